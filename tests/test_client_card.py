import pytest

from crm.models import Conversion, CustomField, CustomFieldValue, Message
from postbacks.models import Delivery, OutgoingPostback
from tracker.models import Partner, RegistrationLink


@pytest.fixture
def card(spot, lead, django_user_model):
    partner = Partner.objects.create(spot=spot, name="1win", slug="1win", click_id_param="sub4")
    RegistrationLink.objects.create(
        spot=spot, partner=partner, name="Signup", base_url="https://p.example/r?p=1"
    )
    field = CustomField.objects.create(spot=spot, key="user_id", type=CustomField.TEXT)
    CustomFieldValue.objects.create(client=lead, field=field, value="u-1")
    conversion, _ = lead.record_conversion("sale", 50, "USD", "t1")
    Message.objects.create(client=lead, kind=Message.SYSTEM, text="Deposit 50.00 USD")
    Message.objects.create(client=lead, kind=Message.MANAGER, text="Welcome aboard")
    postback = OutgoingPostback.objects.create(spot=spot, name="My tracker", url="https://t/x")
    Delivery.objects.create(
        conversion=conversion, spot=spot, postback=postback, status=Delivery.FAILED, attempts=3
    )
    return lead


def card_html(admin_client, lead):
    response = admin_client.get(f"/admin/crm/client/{lead.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_card_shows_attribution_thread_links_and_deliveries(admin_client, card):
    html = card_html(admin_client, card)
    assert 'value="c1"' in html  # advert_campaign_id, editable and visible
    assert "Deposit 50.00 USD" in html and "Welcome aboard" in html
    assert "chat-system" in html and "chat-manager" in html
    assert f'value="https://p.example/r?p=1&amp;sub4={card.click_id}"' in html
    assert 'id="client-deliveries"' in html
    assert "My tracker" in html and "Failed" in html


def test_the_card_lists_the_conversion_timeline(admin_client, card):
    html = card_html(admin_client, card)
    assert "conversions-group" in html and "t1" in html


def client_form(lead, **overrides):
    data = {
        "spot": lead.spot_id,
        "cl_id": lead.cl_id,
        "name": lead.name,
        "username": "",
        "user_id": "",
        "player_id": "",
        "geo": "",
        "manager": "",
        "params": "{}",
        "note": "",
        "custom_values-TOTAL_FORMS": "0",
        "custom_values-INITIAL_FORMS": "0",
        "conversions-TOTAL_FORMS": "0",
        "conversions-INITIAL_FORMS": "0",
    }
    for key in ["pixel", "campaign_id", "adset_id", "ad_id", "campaign_name", "adset_name"]:
        data[f"advert_{key}"] = getattr(lead, f"advert_{key}")
    for key in ["ad_name", "placement", "site_source_name", "landing_id"]:
        data[f"advert_{key}"] = getattr(lead, f"advert_{key}")
    data.update(overrides)
    return data


def test_a_manager_adds_a_note_to_the_thread(admin_client, lead, admin_user):
    response = admin_client.post(
        f"/admin/crm/client/{lead.pk}/change/", client_form(lead, note="Call tomorrow")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    note = Message.objects.get()
    assert (note.kind, note.text, note.author) == (Message.MANAGER, "Call tomorrow", admin_user)


def test_custom_field_values_are_edited_on_the_card_and_checked(admin_client, spot, lead):
    field = CustomField.objects.create(spot=spot, key="last_deposit", type=CustomField.MONEY)
    form = client_form(
        lead,
        **{
            "custom_values-TOTAL_FORMS": "1",
            "custom_values-0-field": field.pk,
            "custom_values-0-value": "12,5",
        },
    )
    assert admin_client.post(f"/admin/crm/client/{lead.pk}/change/", form).status_code == 302
    assert lead.field_values() == {"last_deposit": "12.50"}
    form["custom_values-0-value"] = "lots"
    form["custom_values-INITIAL_FORMS"] = "0"
    CustomFieldValue.objects.all().delete()
    response = admin_client.post(f"/admin/crm/client/{lead.pk}/change/", form)
    assert response.status_code == 200
    assert "is not a number" in response.content.decode()


def test_conversions_without_deliveries_say_so(admin_client, lead):
    Conversion.objects.all().delete()
    assert "No postbacks sent" in card_html(admin_client, lead)


@pytest.mark.browser
def test_the_card_shows_the_thread_and_links_in_a_browser(admin_page, live_server, card):
    admin_page.goto(f"{live_server.url}/admin/crm/client/{card.pk}/change/")
    bubbles = admin_page.locator(".chat-thread .chat-msg")
    assert bubbles.count() == 2
    assert bubbles.nth(1).is_visible()
    link = admin_page.locator(".client-link input")
    assert link.input_value() == f"https://p.example/r?p=1&sub4={card.click_id}"
    admin_page.fill("#id_note", "Sent the link")
    admin_page.click("input[name=_continue]")
    admin_page.wait_for_selector(".messagelist")
    assert admin_page.locator(".chat-thread .chat-msg").count() == 3
    assert "Sent the link" in admin_page.locator(".chat-thread").inner_text()

import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from postbacks.models import OutgoingPostback
from tracker.models import Partner, PartnerPostback, PartnerPreset, RegistrationLink, Spot
from tracker.presets import apply_preset, load_presets, preset_files


def test_at_least_three_presets_ship_and_load(presets):
    assert len(preset_files()) >= 3
    assert {"1win", "keitaro", "binom"} <= set(presets)
    for preset in presets.values():
        assert preset.data["postbacks"], preset.slug


def test_load_presets_command_is_idempotent(db, capsys):
    call_command("load_presets")
    call_command("load_presets")
    assert PartnerPreset.objects.count() == len(preset_files())
    assert "partner preset(s) loaded" in capsys.readouterr().out


def test_a_preset_gives_a_partner_with_ready_postback_urls(spot, presets, settings):
    settings.PUBLIC_URL = "https://trk.example.com"
    partner = apply_preset(presets["1win"], spot)
    assert (partner.click_id_param, partner.preset) == ("sub4", "1win")
    urls = {pb.name: pb.incoming_url() for pb in partner.postbacks.all()}
    base = f"https://trk.example.com/api/postbacks/{spot.postback_token}/tracker-postback"
    assert urls["Registration"] == (
        f"{base}?partner=1win&clickid={{sub4}}&tracker.event=registration"
        "&fields.user_id={user_id}&fields.country={country}"
    )
    assert urls["First Deposit"] == (
        f"{base}?partner=1win&clickid={{sub4}}&tracker.event=first_deposit"
        "&tracker.cost={amount}&tracker.currency={currency}&tracker.tid={event_id}"
        "&fields.last_deposit={amount}&fields.user_id={user_id}"
    )
    assert "tracker.event=resale" in urls["Recurring Deposit"]


def test_a_chosen_click_id_parameter_replaces_the_presets(spot, presets):
    partner = apply_preset(presets["1win"], spot, click_id_param="sub2")
    assert partner.click_id_param == "sub2"
    assert "clickid={sub2}" in partner.postbacks.first().incoming_url()


def test_applying_a_preset_twice_gives_two_partners_with_distinct_slugs(spot, presets):
    a = apply_preset(presets["binom"], spot)
    b = apply_preset(presets["binom"], spot)
    assert (a.slug, b.slug) == ("binom", "binom-2")
    assert a.plain_answer == "OK"
    assert "declined = rejected" in a.status_map


def test_a_preset_with_a_registration_url_makes_a_registration_link(spot, presets):
    partner = apply_preset(presets["1win"], spot, registration_url="https://1w.example/r?p=1")
    link = RegistrationLink.objects.get(partner=partner)
    assert link.final_url == "https://1w.example/r?p=1&sub4={{tracker.clickid}}"


def test_a_preset_can_create_a_locked_outgoing_postback(spot, presets):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base="https://k.example.com/abc/")
    postback = OutgoingPostback.objects.get(partner=partner)
    assert postback.locked
    assert postback.url == (
        "https://k.example.com/abc/postback?subid={cl_id}&status={status}&payout={sum}"
        "&currency={currency}&tid={tid}"
    )
    assert sorted(postback.goals.values_list("token", flat=True)) == ["dep", "redep"]


def test_the_admin_shows_a_locked_url_read_only(admin_client, spot, presets):
    apply_preset(presets["keitaro"], spot, outgoing_base="https://k.example.com/abc")
    postback = OutgoingPostback.objects.get()
    page = admin_client.get(f"/admin/postbacks/outgoingpostback/{postback.pk}/change/")
    html = page.content.decode()
    assert 'name="url"' not in html
    assert "https://k.example.com/abc/postback?subid={cl_id}" in html


def test_field_mappings_must_be_fields_key_equals_macro(spot):
    partner = Partner.objects.create(spot=spot, name="P", slug="p")
    pb = PartnerPostback(partner=partner, name="Reg", event="registration", fields="user_id")
    with pytest.raises(ValidationError, match="fields.<key>="):
        pb.full_clean()
    pb.fields = "fields.user_id={user_id}\ngeo={country}"
    pb.full_clean()
    assert pb.params()[-2:] == [("fields.user_id", "{user_id}"), ("fields.geo", "{country}")]


def test_a_custom_click_id_macro_is_used_in_the_urls(spot):
    partner = Partner.objects.create(
        spot=spot, name="P", slug="p", click_id_param="s1", click_id_macro="[S1]"
    )
    pb = PartnerPostback.objects.create(partner=partner, name="Reg", event="registration")
    assert "clickid=%5BS1%5D" in pb.incoming_url()
    partner.click_id_macro = ""
    assert "clickid={s1}" in pb.incoming_url()


def test_the_admin_adds_a_partner_from_a_preset(admin_client, spot, presets):
    form = admin_client.get("/admin/tracker/partner/from-preset/")
    assert "Keitaro" in form.content.decode()
    response = admin_client.post(
        "/admin/tracker/partner/from-preset/",
        {
            "preset": presets["1win"].pk,
            "spot": spot.pk,
            "click_id_param": "",
            "registration_url": "https://1w.example/r",
            "outgoing_base": "",
        },
    )
    partner = Partner.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/tracker/partner/{partner.pk}/change/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "partner=1win&amp;clickid={sub4}&amp;tracker.event=registration" in page
    assert "copy-button" in page


def test_a_preset_that_sends_to_your_tracker_asks_for_its_address(admin_client, spot, presets):
    response = admin_client.post(
        "/admin/tracker/partner/from-preset/",
        {"preset": presets["keitaro"].pk, "spot": spot.pk},
    )
    assert response.status_code == 200
    assert "Your Keitaro postback address" in response.content.decode()
    assert not Partner.objects.exists()


def test_the_partner_list_offers_the_preset_form(admin_client, db):
    page = admin_client.get("/admin/tracker/partner/").content.decode()
    assert "/admin/tracker/partner/from-preset/" in page


def test_the_spot_page_does_not_let_a_locked_url_be_changed(admin_client, spot, presets):
    apply_preset(presets["keitaro"], spot, outgoing_base="https://k.example.com/abc")
    postback = OutgoingPostback.objects.get()
    html = admin_client.get(f"/admin/tracker/spot/{spot.pk}/change/").content.decode()
    [tag] = re.findall(r'<textarea[^>]*name="outgoing_postbacks-0-url"[^>]*>', html)
    assert " disabled" in tag
    postback.refresh_from_db()
    assert postback.url.startswith("https://k.example.com/abc/postback")


@pytest.mark.browser
def test_a_team_picks_a_preset_in_the_browser_and_copies_ready_urls(admin_page, live_server):
    spot = Spot.objects.create(name="Bot", slug="bot")
    load_presets()
    admin_page.goto(f"{live_server.url}/admin/tracker/partner/")
    admin_page.click("text=Add partner from preset")
    admin_page.select_option("#id_preset", label="1win Partners")
    admin_page.select_option("#id_spot", label="Bot")
    admin_page.fill("#id_registration_url", "https://1w.example/r?p=1")
    admin_page.click("#preset-form input[type=submit]")
    admin_page.wait_for_selector(".messagelist")
    urls = admin_page.locator(".field-ready_url .copyable input").evaluate_all(
        "els => els.map(e => e.value)"
    )
    base = f"{live_server.url}/api/postbacks/{spot.postback_token}/tracker-postback"
    assert len(urls) == 3
    assert urls[0].startswith(f"{base}?partner=1win&clickid={{sub4}}&tracker.event=registration")

import pytest
from django.core.exceptions import ValidationError

from crm.links import client_links, link_context, render_link
from crm.models import CustomField, CustomFieldValue
from tracker.models import Partner, RegistrationLink


@pytest.fixture
def partner(spot):
    return Partner.objects.create(spot=spot, name="1win", slug="1win", click_id_param="sub4")


def test_the_final_url_adds_the_partners_click_id_parameter(spot, partner):
    link = RegistrationLink(spot=spot, partner=partner, base_url="https://p.example/signup?p=7")
    assert link.final_url == "https://p.example/signup?p=7&sub4={{tracker.clickid}}"
    link.base_url = "https://p.example/signup"
    assert link.final_url == "https://p.example/signup?sub4={{tracker.clickid}}"
    link.base_url = "https://p.example/s?a=1#top"
    assert link.final_url == "https://p.example/s?a=1&sub4={{tracker.clickid}}#top"


def test_a_base_url_that_carries_the_click_id_already_is_kept(spot, partner):
    given = "https://p.example/signup?sub1={{tracker.clickid}}"
    assert RegistrationLink(spot=spot, partner=partner, base_url=given).final_url == given
    has_param = "https://p.example/signup?sub4=fixed"
    assert RegistrationLink(spot=spot, partner=partner, base_url=has_param).final_url == has_param


def test_a_link_without_partner_is_its_base_url(spot):
    link = RegistrationLink(spot=spot, base_url="https://p.example/?c={{tracker.clickid}}")
    assert link.final_url == "https://p.example/?c={{tracker.clickid}}"


def test_a_link_renders_the_click_id_and_field_values_of_a_client(spot, partner, lead):
    field = CustomField.objects.create(spot=spot, key="user_id")
    CustomFieldValue.objects.create(client=lead, field=field, value="a b&c")
    RegistrationLink.objects.create(
        spot=spot,
        partner=partner,
        name="Registration",
        base_url="https://p.example/signup?uid={{fields.user_id}}&x={{fields.missing}}",
    )
    [(link, url)] = client_links(lead)
    assert url == f"https://p.example/signup?uid=a%20b%26c&x=&sub4={lead.click_id}"


def test_rendering_is_one_pass_so_a_value_with_braces_is_not_expanded(lead):
    ctx = link_context(lead, {"a": "{{tracker.clickid}}"})
    assert render_link("{{fields.a}}", ctx) == "%7B%7Btracker.clickid%7D%7D"


def test_an_unknown_double_brace_macro_is_refused_with_its_name(spot):
    link = RegistrationLink(spot=spot, name="R", base_url="https://p.example/?c={{tracker.click}}")
    with pytest.raises(ValidationError) as e:
        link.full_clean()
    assert "{{tracker.click}}" in str(e.value)


def test_a_partner_of_another_spot_is_refused(spot, partner, django_user_model):
    from tracker.models import Spot

    other = Spot.objects.create(name="Other", slug="other")
    link = RegistrationLink(spot=other, partner=partner, name="R", base_url="https://p.example/")
    with pytest.raises(ValidationError, match="another spot"):
        link.full_clean()


def test_the_admin_shows_the_final_url(admin_client, spot, partner):
    link = RegistrationLink.objects.create(
        spot=spot, partner=partner, name="Reg", base_url="https://p.example/signup"
    )
    page = admin_client.get(f"/admin/tracker/registrationlink/{link.pk}/change/").content.decode()
    assert 'value="https://p.example/signup?sub4={{tracker.clickid}}"' in page
    listing = admin_client.get("/admin/tracker/registrationlink/").content.decode()
    assert "https://p.example/signup?sub4={{tracker.clickid}}" in listing


def test_the_admin_refuses_an_unknown_macro_with_a_form_error(admin_client, spot):
    response = admin_client.post(
        "/admin/tracker/registrationlink/add/",
        {"spot": spot.pk, "name": "R", "base_url": "https://p.example/?c={{clickid}}"},
    )
    assert response.status_code == 200
    assert "Unknown macro {{clickid}}" in response.content.decode()
    assert not RegistrationLink.objects.exists()

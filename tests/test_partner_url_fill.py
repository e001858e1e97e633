"""Picking the recipient partner of an outgoing postback proposes its default
URL (seed 000), on save and in the browser as the partner is picked."""

import os

import pytest
from django.urls import reverse

from postbacks.models import OutgoingPostback
from tests.test_admin_forms_fuzz import read_form
from tracker.models import Partner, Spot
from tracker.presets import apply_preset

ADD = reverse("admin:postbacks_outgoingpostback_add")
KEITARO = "https://trk.example.com/7d3a1b2/postback?subid={cl_id}&status={status}"


@pytest.fixture
def partner(spot):
    return Partner.objects.create(spot=spot, name="Win Partners", slug="win")


def add_form(admin_client, spot, partner, url=""):
    data = read_form(admin_client.get(ADD))
    data.update(spot=[str(spot.pk)], name=["Second"], url=[url])
    data["partner"] = [str(partner.pk)] if partner else [""]
    return data


def test_an_empty_url_is_filled_with_the_partners_default_on_save(admin_client, spot, partner):
    OutgoingPostback.objects.create(spot=spot, partner=partner, name="First", url=KEITARO)
    response = admin_client.post(ADD, add_form(admin_client, spot, partner), follow=True)
    saved = OutgoingPostback.objects.get(name="Second")
    assert saved.url == KEITARO and saved.partner == partner
    said = [str(m) for m in response.context["messages"]]
    filled = f"The URL was empty: it is now Win Partners's default URL, {KEITARO}."
    assert [m for m in said if m.startswith(filled)]
    # A URL written is kept.
    own = "https://own.example/pb?c={click_id}"
    data = add_form(admin_client, spot, partner, url=own)
    admin_client.post(ADD, {**data, "name": ["Third"]})
    assert OutgoingPostback.objects.get(name="Third").url == own


def test_a_partner_without_a_default_url_says_so(admin_client, spot, partner):
    response = admin_client.post(ADD, add_form(admin_client, spot, partner))
    assert response.status_code == 200 and not OutgoingPostback.objects.exists()
    [error] = response.context["adminform"].form.errors["url"]
    assert error == (
        "Win Partners has no default URL: no postback has been sent to it yet. Write the URL."
    )
    response = admin_client.post(ADD, add_form(admin_client, spot, None))
    [error] = response.context["adminform"].form.errors["url"]
    assert error == "Write the URL, or choose a partner to use its default URL."


def test_a_preset_partner_without_a_postback_names_its_path(admin_client, spot, presets):
    keitaro = apply_preset(presets["keitaro"], spot)
    response = admin_client.post(ADD, add_form(admin_client, spot, keitaro))
    [error] = response.context["adminform"].form.errors["url"]
    assert "has no default URL" in error
    assert "Its preset gives the path /postback?subid={cl_id}" in error


def test_the_change_page_maps_each_partner_to_its_default_url(admin_client, spot, partner):
    OutgoingPostback.objects.create(spot=spot, partner=partner, name="Old", url="https://old/")
    OutgoingPostback.objects.create(spot=spot, partner=partner, name="First", url=KEITARO)
    page = admin_client.get(ADD).content.decode()
    assert "data-default-urls=" in page and "trk.example.com" in page and "https://old/" not in page


@pytest.mark.browser
def test_picking_the_partner_fills_the_empty_url_field(admin_page, live_server):
    spot = Spot.objects.create(name="Bot", slug="bot")
    win = Partner.objects.create(spot=spot, name="Win Partners", slug="win")
    bare = Partner.objects.create(spot=spot, name="Bare", slug="bare")
    OutgoingPostback.objects.create(spot=spot, partner=win, name="First", url=KEITARO)
    admin_page.goto(f"{live_server.url}{ADD}")
    assert admin_page.input_value("#id_url") == ""
    admin_page.select_option("#id_partner", str(win.pk))
    assert admin_page.input_value("#id_url") == KEITARO
    # A partner without a default leaves the field; a URL the user wrote stays.
    admin_page.select_option("#id_partner", str(bare.pk))
    assert admin_page.input_value("#id_url") == KEITARO
    admin_page.fill("#id_url", "https://mine.example/")
    admin_page.select_option("#id_partner", str(win.pk))
    assert admin_page.input_value("#id_url") == "https://mine.example/"
    shots = os.environ.get("SCREENSHOT_DIR")
    if shots:
        admin_page.screenshot(path=os.path.join(shots, "partner_url_fill.png"))
    admin_page.fill("#id_url", "")
    admin_page.select_option("#id_partner", str(bare.pk))
    admin_page.select_option("#id_partner", str(win.pk))
    admin_page.fill("#id_name", "Second")
    admin_page.select_option("#id_spot", str(spot.pk))
    admin_page.click("input[name=_save]")
    assert OutgoingPostback.objects.get(name="Second").url == KEITARO

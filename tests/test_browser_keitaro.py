"""The team's own Keitaro, set up from the preset in Chromium at 1366x768: a
rejected deposit arrives there as rejected, an approved one as sale, and a
client without Keitaro's click id is skipped with the reason in the list
(issue 22, points 1 and 2). Screenshots go to $SCREENSHOT_DIR when set."""

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from crm.models import Client
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain
from tracker.models import Spot
from tracker.presets import load_presets

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("outgoing")]


@pytest.fixture
def shots(tmp_path):
    return Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)


def fits(page):
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366


def deposit(template, lead, status, tid, payout):
    """Keitaro calling our URL as pasted, its macros filled in."""
    url = template
    for macro, value in {
        "{subid}": lead.click_id,
        "{status}": status,
        "{payout}": payout,
        "{currency}": "USD",
        "{tid}": tid,
    }.items():
        url = url.replace(macro, value)
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    drain()


def test_a_rejected_deposit_reaches_the_teams_keitaro_as_rejected(
    admin_page, live_server, receiver, shots
):
    spot = Spot.objects.create(name="Casino bot", slug="casino")
    load_presets()
    page = admin_page
    page.set_viewport_size({"width": 1366, "height": 768})

    page.goto(f"{live_server.url}/admin/tracker/partner/")
    page.click("text=Add partner from preset")
    page.select_option("#id_preset", label="Keitaro (network or team tracker)")
    page.select_option("#id_spot", label="Casino bot")
    page.fill("#id_outgoing_base", receiver.url + "/7d3a1b2")
    page.screenshot(path=str(shots / "keitaro-preset-form-1366.png"), full_page=True)
    fits(page)
    page.click("#preset-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    page.screenshot(path=str(shots / "keitaro-partner-1366.png"), full_page=True)
    urls = page.locator(".field-ready_url .copyable input").evaluate_all(
        "els => els.map(e => e.value)"
    )
    [first_deposit] = [u for u in urls if "tracker.event=sale" in u]

    # The outgoing postback the preset made: the status in Keitaro's words.
    postback = OutgoingPostback.objects.get(locked=True)
    page.goto(f"{live_server.url}/admin/postbacks/outgoingpostback/{postback.pk}/change/")
    url = page.inner_text(".field-url .readonly")
    assert "status={status}" in url and "status=sale" not in url
    assert page.locator("#id_status_words").input_value() == (
        "approved = sale\npending = lead\nrejected = rejected"
    )
    assert page.locator("#id_required_macros").input_value() == "cl_id"
    page.screenshot(path=str(shots / "keitaro-outgoing-postback-1366.png"), full_page=True)

    lead = Client.objects.create(spot=spot, name="Ann", cl_id="kt-click-1")
    deposit(first_deposit, lead, "rejected", "t1", "55.50")
    deposit(first_deposit, lead, "sale", "t2", "20")
    stranger = Client.objects.create(spot=spot, name="Bob")  # no Keitaro click id
    deposit(first_deposit, stranger, "sale", "t3", "10")

    got = [parse_qs(urlsplit(r.path).query) for r in receiver.wait_for(2)]
    assert [(q["subid"], q["status"], q["payout"]) for q in got] == [
        (["kt-click-1"], ["rejected"], ["55.50"]),
        (["kt-click-1"], ["sale"], ["20.00"]),
    ]
    assert len(receiver.requests) == 2  # nothing sent for Bob

    page.goto(f"{live_server.url}/admin/postbacks/delivery/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    listed = " ".join(rows.all_inner_texts())
    assert "{cl_id} is empty (the client has no click id of your" in listed
    page.screenshot(path=str(shots / "keitaro-deliveries-1366.png"), full_page=True)
    fits(page)
    skipped = Delivery.objects.get(status=Delivery.SKIPPED)
    assert skipped.conversion.client == stranger
    assert skipped.last_error == "{cl_id} is empty (the client has no click id of your tracker)."

"""A team lead's first spot, in a real browser (issue 22, points 3 to 6): the
add page shows the default goals as rows to edit and no postback URL yet;
saved, the spot gets exactly those goals; a Facebook pixel added on the spot
page lists the event each goal sends; and a deposit posted to the spot's URL
reaches a local stand-in of the Graph API as Purchase.

Screenshots go to $SCREENSHOT_DIR when set."""

import json
import os
from pathlib import Path

import pytest
import requests

from crm.models import Client
from tests.receiver import drain, form_fields
from tracker.models import Spot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("outgoing")]

SIZES = [(1366, 768), (1920, 1080)]


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(folder / f"spot-journey-{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 1366, "height": 768})
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"the {name} page is {width}px wide at 1366"

    return take


def goal_rows(page):
    rows = page.locator("#goals-group tr.form-row:not(.empty-form)")
    return rows.evaluate_all(
        "rows => rows.map(r => [r.querySelector('td.field-token input').value,"
        " r.querySelector('td.field-message_template input').value])"
    )


def test_a_team_lead_sets_up_a_spot_and_a_deposit_reaches_the_facebook_pixel(
    admin_page, live_server, receiver, settings, shots
):
    settings.POSTBACKS_PIXEL_URLS = {**settings.POSTBACKS_PIXEL_URLS, "facebook": receiver.url}
    page = admin_page
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/tracker/spot/add/")
    assert "The postback URL appears once the spot is saved" in page.content()
    assert goal_rows(page) == [
        ["reg", "Registered at the partner"],
        ["dep", "First deposit {sum} {currency}"],
        ["redep", "Deposit {sum} {currency}"],
        ["lead", ""],
    ]
    page.fill("#id_name", "Casino bot")
    dep = page.locator("#goals-group tr.form-row:not(.empty-form)").nth(1)
    dep.locator("td.field-message_template input").fill("Deposit {sum} {currency}, first one")
    page.click("#goals-group .add-row a")
    page.fill("#id_goals-4-name", "Withdrawal")
    page.fill("#id_goals-4-token", "withdrawal")
    shots(page, "add")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")

    spot = Spot.objects.get(slug="casino-bot")
    goals = {g.token: g for g in spot.goals.all()}
    assert sorted(goals) == ["dep", "lead", "redep", "reg", "withdrawal"]
    assert goals["dep"].message_template == "Deposit {sum} {currency}, first one"
    assert goals["dep"].facebook_event == "Purchase" and goals["dep"].show_sum

    page.click("#pixels-group .add-row a")
    page.select_option("#id_pixels-0-network", "facebook")
    page.fill("#id_pixels-0-pixel_id", "4242")
    page.fill("#id_pixels-0-access_token", "EAAB-token")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    events = page.locator("#pixels-group .pixel-events").inner_text()
    assert "dep → Purchase" in events and "redep → Purchase" in events
    assert not page.locator(".pixel-silent").count()
    shots(page, "pixel")

    url = page.locator(".field-incoming_postback_url .copyable input").input_value()
    assert url.endswith(f"/api/postbacks/{spot.postback_token}/tracker-postback")
    lead = Client.objects.create(spot=spot, name="Ann")
    answer = requests.get(
        url,
        {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "50"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    drain()
    sent = [r for r in receiver.wait_for(1) if r.path == "/v18.0/4242/events"]
    # The lead and the deposit may go in one request: the Conversions API takes a batch.
    events = [e for r in sent for e in json.loads(form_fields(r.body)["data"][0])]
    names = [e["event_name"] for e in events]
    assert "Purchase" in names, names

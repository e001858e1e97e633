"""The Status page as an operator sees it in Chromium at 1366x768: reached from
the menu, its queues, a failing target's last error, a loop's heartbeat and the
last hour's chart, all within the screen's width. Screenshots go to
$SCREENSHOT_DIR when set."""

import os
from pathlib import Path

import pytest
from django.test import Client as DjangoClient

from crm.models import Client
from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.loops import heartbeat
from postbacks.models import OutgoingPostback
from tracker.models import Spot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("outgoing")]


@pytest.fixture
def shots(tmp_path):
    return Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)


def test_the_status_page_fits_a_laptop_screen(admin_page, live_server, receiver, settings, shots):
    settings.POSTBACKS_DELAY_SCALE = 1  # the retry a minute away: still retrying below
    spot = Spot.objects.create(name="Casino bot", slug="casino")
    OutgoingPostback.objects.create(
        spot=spot, name="Keitaro of the team, the main one", url=receiver.url + "/pb"
    )
    receiver.reply(500, "Internal Server Error")
    for name in ("Ann", "Bob"):
        accept(Client.objects.create(spot=spot, name=name, advert_pixel="px"), "dep", amount=50)
    batch.send_due()
    lead = Client.objects.create(spot=spot, name="Cat")
    # A postback stored and answered, not decided yet (no loop runs here).
    queued = DjangoClient().get(
        f"/api/postbacks/{spot.postback_token}/tracker-postback?clickid={lead.click_id}&goal=reg"
    )
    assert queued.json()["status"] == "queued"
    heart = heartbeat.Heart(interval=1.0)  # a loop of this process, as the embedded one
    heart.beat(handled=2)

    page = admin_page
    page.set_viewport_size({"width": 1366, "height": 768})
    try:
        page.goto(f"{live_server.url}/admin/")
        assert page.locator("#tile-queued .figure").inner_text() == "1"
        assert "queued to decide" in page.locator("#tile-queued").inner_text()
        page.screenshot(path=str(shots / "home-1366.png"), full_page=True)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
        page.click("a:text-is('Status')")
        page.wait_for_url("**/admin/status/")
        tiles = page.locator("#status-queues .dash-tiles li").all_inner_texts()
        assert any(t.startswith("1\n") and "Deliveries retrying" in t for t in tiles), tiles
        assert any(t.startswith("1\n") and "Incoming not yet decided" in t for t in tiles), tiles
        error = page.locator("#status-failing td.last-error").first.inner_text()
        assert error == "HTTP 500"
        assert page.locator("#status-loops tr.loop").count() >= 1
        assert page.locator("#status-chart polyline.series").count() == 3
        page.screenshot(path=str(shots / "status-page-1366.png"), full_page=True)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    finally:
        heart.stop()

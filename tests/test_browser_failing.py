"""A receiver that answers 500 and one that refuses connections, as a team lead
sees them in Chromium at 1366x768: the delivery list says *Retrying* with the
code or the plain error and the next try, tints the rows, and the spot page
counts the failing deliveries. Screenshots go to $SCREENSHOT_DIR when set."""

import os
import socket
from pathlib import Path

import pytest

from crm.models import Client
from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.models import OutgoingPostback
from tracker.models import Spot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("outgoing")]

AMBER_TINT = "rgba(230, 160, 0, 0.16)"


@pytest.fixture
def shots(tmp_path):
    return Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failing_receiver_shows_retrying_with_its_code(
    admin_page, live_server, receiver, settings, shots
):
    settings.POSTBACKS_DELAY_SCALE = 1  # the first retry a minute away: still retrying below
    spot = Spot.objects.create(name="Casino bot", slug="casino")
    OutgoingPostback.objects.create(spot=spot, name="Keitaro", url=receiver.url + "/pb")
    down = closed_port()
    OutgoingPostback.objects.create(spot=spot, name="Own tracker", url=f"http://127.0.0.1:{down}/")
    receiver.reply(500, "Internal Server Error")
    accept(Client.objects.create(spot=spot, name="Ann", advert_pixel="px"), "dep", amount=50)
    batch.send_due()

    page = admin_page
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/postbacks/delivery/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    cells = page.locator("#result_list td.field-state").all_inner_texts()
    assert all(c.startswith("Retrying") for c in cells), cells
    assert any("HTTP 500" in c for c in cells), cells
    assert any(f"connection refused by 127.0.0.1:{down}" in c for c in cells), cells
    assert all(
        "(in " in t for t in page.locator("#result_list td.field-next_try").all_inner_texts()
    )
    tint = rows.first.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert tint == AMBER_TINT
    page.screenshot(path=str(shots / "failing-deliveries-1366.png"), full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366

    page.click("#changelist-filter a:text-is('Retrying')")
    page.wait_for_url("**status=retrying")
    assert page.locator("#result_list tbody tr").count() == 2
    page.click("#changelist-filter a:text-is('Failed')")
    page.wait_for_url("**status=failed")
    assert page.locator("#result_list tbody tr").count() == 0

    page.goto(f"{live_server.url}/admin/tracker/spot/{spot.pk}/change/")
    states = page.locator("a.postback-failing").all_inner_texts()
    assert states == ["1 failing now (1 retrying)"] * 2, states
    page.screenshot(path=str(shots / "failing-spot-page-1366.png"), full_page=True)

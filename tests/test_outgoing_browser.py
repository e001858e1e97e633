"""An admin previews and test-sends an outgoing postback in a real browser."""

import pytest

from crm.models import Client
from postbacks.models import OutgoingPostback
from tracker.models import Spot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("outgoing")]


def test_an_admin_previews_and_test_sends_a_postback_for_a_conversion(
    admin_page, live_server, receiver
):
    spot = Spot.objects.create(name="Bot", slug="bot")
    pb = OutgoingPostback.objects.create(
        spot=spot, name="Partner", url=receiver.url + "/pb?c={click_id}&s={sum}"
    )
    lead = Client.objects.create(spot=spot, name="Ann", advert_pixel="px")
    conversion, _ = lead.record_conversion("dep", amount=12)
    admin_page.goto(f"{live_server.url}/admin/postbacks/outgoingpostback/{pb.pk}/change/")
    admin_page.click("text=Preview and test send")
    admin_page.select_option("#conversion", str(conversion.pk))
    admin_page.click("input[value=Preview]")
    expected = f"GET {receiver.url}/pb?c={lead.click_id}&s=12.00"
    assert admin_page.locator("#preview").inner_text().startswith(expected)
    admin_page.click("input[name=_send]")
    assert admin_page.locator("#test-result").inner_text().startswith("Success")
    assert "200" in admin_page.locator("#response").inner_text()
    [got] = receiver.wait_for(1)
    assert got.path == f"/pb?c={lead.click_id}&s=12.00"

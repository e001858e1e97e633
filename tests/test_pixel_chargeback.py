"""A pixel never reports a rejection as a sale, nor one sale twice: a
chargeback of a deposit does not reach Facebook as another Purchase, even with
*send rejected* ticked before it stopped being offered (issue 23, point 5)."""

import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.models import Conversion
from postbacks.models import Delivery
from tests.receiver import drain, form_fields
from tracker.admin import PixelForm
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

REJECTION = (
    "A pixel has no event for a rejection: the ad network would count it as another "
    "sale of this goal (Facebook, TikTok, GA4 and Metrica alike)."
)


@pytest.fixture
def pixel(spot, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="dep").update(facebook_event="Purchase")
    return Pixel.objects.create(
        spot=spot,
        network="facebook",
        pixel_id="1",
        access_token="t",
        send_pending=True,
        send_rejected=True,  # as a pixel saved while the admin offered it
    )


def postback(client, spot, lead, status, amount="70"):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.tid": "t1"}
    answer = client.get(url, params | {"tracker.status": status, "tracker.cost": amount})
    assert answer.status_code == 200, answer.content
    drain()


def events(receiver):
    """(event name, value, currency) of each pixel request since the last look."""
    out = []
    for request in receiver.requests:
        [event] = json.loads(form_fields(request.body)["data"][0])
        out.append(
            (event["event_name"], event["custom_data"]["value"], event["custom_data"]["currency"])
        )
    receiver.requests.clear()
    return out


def skipped(pixel):
    rows = Delivery.objects.filter(pixel=pixel, status=Delivery.SKIPPED).order_by("created")
    return [(d.event_status, d.last_error) for d in rows]


def test_a_chargeback_is_no_second_purchase(client, spot, lead, receiver, pixel):
    postback(client, spot, lead, "approved")
    assert events(receiver) == [("Purchase", 70.0, "USD")]
    postback(client, spot, lead, "rejected")
    assert events(receiver) == []
    assert skipped(pixel) == [("rejected", REJECTION)]


def test_a_deposit_rejected_from_the_start_is_not_sent(client, spot, lead, receiver, pixel):
    postback(client, spot, lead, "rejected")
    assert events(receiver) == []
    assert skipped(pixel) == [("rejected", REJECTION)]


def test_a_sale_reaches_a_pixel_once_whatever_changes_after(client, spot, lead, receiver, pixel):
    spot.goals.filter(token="dep").update(repeat_mode="update")  # a new amount replaces
    postback(client, spot, lead, "pending")
    assert events(receiver) == [("Purchase", 70.0, "USD")]
    postback(client, spot, lead, "approved")  # confirmed
    postback(client, spot, lead, "approved", amount="65")  # mended
    postback(client, spot, lead, "rejected")  # charged back
    postback(client, spot, lead, "approved")  # and approved again
    assert events(receiver) == []
    reasons = [why for _, why in skipped(pixel)]
    assert len(reasons) == 4 and reasons[2] == REJECTION
    assert all("told of this sale already" in why for i, why in enumerate(reasons) if i != 2)


def test_a_pixel_delivery_of_a_rejection_made_before_is_refused_not_sent(
    spot, lead, receiver, pixel
):
    dep = spot.goals.get(token="dep")
    conversion = Conversion.objects.create(
        spot=spot, client=lead, goal=dep, amount=70, status="rejected"
    )
    delivery = Delivery.objects.create(
        conversion=conversion,
        spot=spot,
        pixel=pixel,
        event_status="rejected",
        previous_status="approved",
        previous_amount=Decimal(70),
        next_attempt=timezone.now(),
    )
    drain()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.FAILED and REJECTION in delivery.last_error
    assert receiver.requests == []


def test_the_pixel_form_does_not_offer_send_rejected_and_says_why(admin_client, spot, pixel):
    page = admin_client.get(f"/admin/tracker/spot/{spot.pk}/change/").content.decode()
    [box] = re.findall(r'<input type="checkbox" name="pixels-0-send_rejected"[^>]*>', page)
    assert "disabled" in box and "checked" not in box
    assert "Never for a pixel: an ad network has no event that takes a sale back" in page
    data = {f: getattr(pixel, f) for f in PixelForm.Meta.fields} | {"send_rejected": "on"}
    form = PixelForm(data, instance=pixel)
    assert form.is_valid(), form.errors
    form.save()
    pixel.refresh_from_db()
    assert pixel.send_rejected is False  # ticked before: cleared on its next save

"""A stable event id per event, stored on its deliveries and passed to the
pixels, the same on retries and resends (issue 28, point 4)."""

import json

import pytest

from postbacks.delivery import attempts
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def networks(spot, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="dep").update(
        facebook_event="Purchase", tiktok_event="CompletePayment", google_event="purchase"
    )
    for network in ("facebook", "tiktok", "google"):
        Pixel.objects.create(
            spot=spot, network=network, pixel_id="1", access_token="t", send_pending=True
        )
    OutgoingPostback.objects.create(spot=spot, name="source", url=receiver.url + "/pb")
    return receiver


def ids_sent(receiver):
    """{network: the event id it got} of the requests since the last look."""
    got = {}
    for request in receiver.requests:
        if request.path.startswith("/v18.0/"):
            [event] = json.loads(form_fields(request.body)["data"][0])
            got.setdefault("facebook", []).append(event["event_id"])
        elif request.path.startswith("/open_api/"):
            got.setdefault("tiktok", []).append(json.loads(request.body)["data"][0]["event_id"])
        elif request.path.startswith("/mp/"):
            params = json.loads(request.body)["events"][0]["params"]
            got.setdefault("google", []).append(params["transaction_id"])
    receiver.requests.clear()
    return got


def test_every_delivery_of_an_event_has_its_id_and_pixels_get_it(lead, networks):
    conversion, _, _ = accept(lead, "dep", amount=10, status="pending")  # no tid
    drain()
    first = f"{conversion.pk}-0"
    assert set(Delivery.objects.values_list("event_id", flat=True)) == {first}
    assert ids_sent(networks) == {"facebook": [first], "tiktok": [first], "google": [first]}
    conversion.status = "approved"
    conversion.save_edit()
    conversion.amount = 12
    conversion.save_edit()
    drain()
    ids = Delivery.objects.filter(postback__isnull=False).order_by("created")
    assert list(ids.values_list("event_id", flat=True)) == [
        first,
        f"{conversion.pk}-1",
        f"{conversion.pk}-2",
    ]


def test_the_id_is_the_same_on_retries_and_resends(lead, networks):
    networks.reply(500, "down")
    conversion, _, _ = accept(lead, "dep", amount=10, tid="t1")
    drain()
    pixel = Delivery.objects.get(pixel__network="facebook")
    bodies = list(pixel.attempt_log.values_list("request_body", flat=True))
    attempts.resend(Delivery.objects.filter(pk=pixel.pk))
    drain()
    bodies += list(pixel.attempt_log.values_list("request_body", flat=True))[len(bodies) :]
    assert len(bodies) >= 2
    for body in bodies:
        [event] = json.loads(form_fields(body)["data"][0])
        assert event["event_id"] == f"{conversion.pk}-0"

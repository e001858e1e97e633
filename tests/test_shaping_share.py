"""Send share: N% of the events that qualify, by a counter per goal, the
others kept as deliveries skipped by share with the counter's state (issue
28, point 1)."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from postbacks.delivery.fanout import FOLLOWS_SHARE, accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def halved(spot, receiver):
    return OutgoingPostback.objects.create(
        spot=spot, name="source", url=receiver.url + "/pb?tid={tid}&s={status}", send_share=50
    )


def tids(receiver):
    got = [parse_qs(urlsplit(r.path).query) for r in receiver.requests]
    receiver.requests.clear()
    return [(q["tid"][0], q["s"][0]) for q in got]


def test_half_sends_every_second_event_and_records_the_others(spot, lead, receiver, halved):
    for n in range(1, 7):
        accept(lead, "redep" if n > 1 else "dep", amount=10, tid=f"t{n}")
    drain()
    # dep and redep are goals of their own: each has its counter.
    assert sorted(tids(receiver)) == [
        ("t1", "approved"),
        ("t2", "approved"),
        ("t4", "approved"),
        ("t6", "approved"),
    ]
    skipped = Delivery.objects.filter(postback=halved, status=Delivery.SKIPPED)
    assert sorted(skipped.values_list("last_error", flat=True)) == [
        "Skipped by share: event 2 of this goal here, 1 of 2 sent at 50%.",
        "Skipped by share: event 4 of this goal here, 2 of 4 sent at 50%.",
    ]
    halved.refresh_from_db()
    dep, redep = spot.goals.get(token="dep"), spot.goals.get(token="redep")
    assert halved.share_counters == {str(dep.pk): 1, str(redep.pk): 5}
    assert Delivery.objects.filter(postback=halved).count() == 6  # none silently absent


def test_seventy_percent_sends_seven_of_ten(spot, lead, receiver, halved):
    halved.send_share = 70
    halved.save()
    accept(lead, "dep", amount=10, tid="first")
    for n in range(10):
        accept(lead, "redep", amount=10, tid=f"r{n}")
    drain()
    sent = sorted(tid for tid, _ in tids(receiver) if tid.startswith("r"))
    assert sent == ["r0", "r1", "r2", "r4", "r5", "r7", "r8"]


def test_a_conversions_changes_follow_its_first_event(spot, lead, receiver, halved):
    one, _, _ = accept(lead, "dep", amount=10, tid="a", status="pending")
    two, _, _ = accept(lead, "redep", amount=10, tid="b", status="pending")
    three, _, _ = accept(lead, "redep", amount=10, tid="c", status="pending")
    drain()
    assert sorted(tids(receiver)) == [("a", "pending"), ("b", "pending")]
    for tid in ("c", "b"):
        accept(lead, "redep", amount=10, tid=tid, status="approved")
    drain()
    # b went, so its approval goes; c was skipped by share, so is its approval.
    assert tids(receiver) == [("b", "approved")]
    change = Delivery.objects.get(conversion=three, event_status="approved")
    assert (change.status, change.last_error) == (Delivery.SKIPPED, FOLLOWS_SHARE)
    halved.refresh_from_db()
    assert halved.share_counters[str(three.goal_id)] == 2  # changes are not counted


def test_a_pixel_sends_its_share(spot, lead, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="redep").update(facebook_event="Purchase")
    pixel = Pixel.objects.create(
        spot=spot, network="facebook", pixel_id="1", access_token="t", send_share=50
    )
    for n in range(4):
        accept(lead, "redep", amount=10 + n, tid=f"p{n}")
    drain()
    values = []
    for request in receiver.requests:
        for event in json.loads(form_fields(request.body)["data"][0]):
            values.append(event["custom_data"]["value"])
    assert sorted(values) == [10.0, 12.0]
    reasons = Delivery.objects.filter(pixel=pixel, status=Delivery.SKIPPED)
    assert reasons.filter(last_error__startswith="Skipped by share: event").count() == 2

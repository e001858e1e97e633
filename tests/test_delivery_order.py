"""Per conversion and target, events reach a receiver in the order they
happened, and the receiver ends on the conversion's final state (issue 23,
point 1): a retried change never lands after a newer one, quick changes are
not sent side by side, a change made obsolete before it went out is
superseded, and other conversions still go out in parallel."""

import datetime
import threading
import time

import pytest
from django.utils import timezone

from crm.models import Conversion
from postbacks import health
from postbacks.delivery import batch, failing
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.applying import applying_receiver  # noqa: F401 - the `applying` fixture
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")

REPORT = "/pb?c={conversion_id}&s={status}&was={previous_status}&sum={sum}&was_sum={previous_sum}"


@pytest.fixture
def postback(spot, applying):
    return OutgoingPostback.objects.create(spot=spot, name="partner", url=applying.url + REPORT)


def change(lead, status, tid="t1", amount=50):
    conversion, outcome, _ = accept(lead, "dep", tid=tid, status=status, amount=amount)
    assert outcome in ("created", "updated")
    return conversion


def delivery_of(conversion, status):
    return Delivery.objects.get(conversion=conversion, event_status=status, previous_status__gt="")


def test_a_retried_change_never_lands_after_a_newer_one(lead, postback, applying):
    conversion = change(lead, "approved")
    drain()
    applying.rule = lambda q, n: (500, 0, {}) if q["s"] == "rejected" and n == 2 else (200, 0, {})
    change(lead, "rejected")
    batch.send_due()  # the receiver answers 500: a retry is due in a moment
    assert Delivery.objects.filter(status=Delivery.PENDING, attempts=1).count() == 1
    change(lead, "approved")
    drain()
    time.sleep(0.2)  # past the retry's time: nothing else goes out
    drain()
    assert applying.state(conversion.pk) == ("approved", "50.00")
    assert [q["s"] for _, q in applying.arrived] == ["approved", "rejected", "approved"]
    rejected, approved = delivery_of(conversion, "rejected"), delivery_of(conversion, "approved")
    assert rejected.status == Delivery.SUPERSEDED and rejected.superseded_by == approved.pk
    assert str(approved.pk) in rejected.last_error
    assert approved.status == Delivery.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_change_failing_while_a_newer_one_is_made_is_superseded(lead, postback, applying):
    conversion = change(lead, "approved")
    drain()
    # The receiver is slow to answer the rejection, then fails it.
    applying.rule = lambda q, n: (500, 0.4, {}) if q["s"] == "rejected" else (200, 0, {})
    change(lead, "rejected")
    sender = threading.Thread(target=batch.send_due)
    sender.start()
    while not applying.arrived[1:]:
        time.sleep(0.005)
    change(lead, "approved")  # made while the rejection is being sent
    sender.join()
    drain()
    assert applying.state(conversion.pk) == ("approved", "50.00")
    assert [q["s"] for _, q in applying.applied] == ["approved", "approved"]
    assert delivery_of(conversion, "rejected").status == Delivery.SUPERSEDED


def test_quick_changes_in_one_batch_with_a_slow_first_send_end_right(
    spot, lead, postback, applying
):
    # The receiver applies the first change of each conversion slowly.
    applying.rule = lambda q, n: (200, 0.05 if q["s"] == "rejected" else 0, {})
    for run in range(20):
        tid = f"run-{run}"
        conversion = change(lead, "approved", tid=tid)
        drain()
        for status in ("rejected", "pending", "approved"):
            change(lead, status, tid=tid)
        drain()
        assert applying.state(conversion.pk) == ("approved", "50.00"), run


@pytest.mark.django_db(transaction=True)
def test_changes_made_while_the_first_is_sent_wait_for_it(lead, postback, applying):
    lead.spot.goals.filter(token="dep").update(repeat_mode="update")  # a new amount replaces
    applying.rule = lambda q, n: (200, 0.3 if n == 1 else 0, {})
    conversion = change(lead, "pending")
    sender = threading.Thread(target=batch.send_due)
    sender.start()
    while not applying.arrived:
        time.sleep(0.005)
    change(lead, "approved")
    change(lead, "approved", amount=60)
    sender.join()
    drain()
    # The first event is never superseded; the amount change keeps its place.
    got = [(q["s"], q["was"], q["sum"], q["was_sum"]) for _, q in applying.applied]
    assert got == [
        ("pending", "", "50.00", ""),
        ("approved", "pending", "50.00", "50.00"),
        ("approved", "approved", "60.00", "50.00"),
    ]
    first_end = applying.applied[0][0]
    assert all(at >= first_end for at, _ in applying.arrived[1:])
    assert applying.state(conversion.pk) == ("approved", "60.00")


def test_other_conversions_still_go_out_side_by_side(lead, postback, applying):
    # A slow answer to each creation, a quicker one to each chargeback.
    applying.rule = lambda q, n: (200, 0.3 if q["s"] == "approved" else 0.1, {})
    conversions = [change(lead, "approved", tid=tid) for tid in ("a", "b", "c")]
    for tid in ("a", "b", "c"):
        change(lead, "rejected", tid=tid)
    started = time.monotonic()
    drain()
    # Each conversion's two in turn, the three conversions at once: not six in a row.
    assert time.monotonic() - started < 1.2
    assert [applying.state(c.pk) for c in conversions] == [("rejected", "50.00")] * 3


def test_every_target_keeps_its_own_order(spot, lead, postback, applying):
    second = OutgoingPostback.objects.create(spot=spot, name="second", url=applying.url + REPORT)
    conversion = change(lead, "approved")
    change(lead, "rejected")
    change(lead, "approved")
    drain()
    for target in (postback, second):
        rows = Delivery.objects.filter(postback=target).order_by("created")
        assert [d.status for d in rows] == [
            Delivery.SUCCESS,
            Delivery.SUPERSEDED,
            Delivery.SUCCESS,
        ]
        assert rows[1].superseded_by == rows[2].pk
    assert applying.state(conversion.pk) == ("approved", "50.00")
    assert Conversion.objects.get(pk=conversion.pk).status == "approved"


def test_the_list_shows_a_superseded_delivery(admin_client, lead, postback, applying):
    conversion = change(lead, "approved")
    change(lead, "rejected")
    change(lead, "approved")
    page = admin_client.get("/admin/postbacks/delivery/?status=superseded").content.decode()
    # The filter keeps it alone, and its row says which delivery replaced it.
    assert page.count('class="delivery-state') == 1
    assert 'class="delivery-state state-superseded"' in page
    newer = delivery_of(conversion, "approved")
    assert f"Superseded by {newer.pk}" in page


def test_a_change_behind_a_retry_hours_away_waits_without_alarm(lead, postback, applying):
    applying.rule = lambda q, n: (500, 0, {})
    conversion = change(lead, "approved")
    batch.send_due()
    first = Delivery.objects.get()
    later = timezone.now() + datetime.timedelta(hours=2)
    Delivery.objects.filter(pk=first.pk).update(next_attempt=later)  # a retry hours away
    change(lead, "rejected")
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Delivery.objects.exclude(pk=first.pk).update(next_attempt=long_ago)
    assert batch.send_due() == 0 and len(applying.arrived) == 1
    # The loops sleep until the retry, and the health check sees nothing late.
    assert batch.next_due() == later
    assert health.oldest_overdue_seconds() == 0
    assert failing.backlog().due == 0  # nor the dashboard and the Status page
    assert delivery_of(conversion, "rejected").status == Delivery.PENDING

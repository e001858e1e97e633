"""The delivery loops send in batches: a bounded number of statements per
batch, a pool of threads where a slow receiver holds only its own, and a loop
that wakes when the next delivery falls due."""

import datetime
import threading
import time

import pytest
from django.db import connection, transaction

from crm.models import Client, CustomField
from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.loops import embedded
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tests.receiver import drain
from tracker.models import Pixel, Spot

pytestmark = pytest.mark.usefixtures("outgoing")


def leads(spot, n):
    return [Client.objects.create(spot=spot, advert_pixel="px") for _ in range(n)]


def test_a_batch_costs_a_bounded_number_of_statements_whatever_its_size(
    spot, receiver, settings, django_assert_max_num_queries
):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    field = CustomField.objects.create(spot=spot, key="country", label="Country")
    OutgoingPostback.objects.create(
        spot=spot, name="p", url=receiver.url + "/pb?c={click_id}&f={fields__country}"
    )
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    spot.goals.filter(token="reg").update(facebook_event="CompleteRegistration")
    spot.goals.filter(token="lead").update(facebook_event="")  # the registrations only
    clients = leads(spot, 40)
    for client in clients:
        client.custom_values.create(field=field, value=f"c{client.pk}")
        accept(client, "reg")
    assert Delivery.objects.filter(status=Delivery.PENDING).count() == 80
    # 80 deliveries of 40 clients to two targets, in one batch: one by one
    # they took 8 statements each (640); a batch is a claim, a load and bulk
    # writes per half of it that ended (28 here, no savepoints), whatever its
    # size.
    settings.POSTBACKS_SENDER_THREADS = 40  # room for 80 at once
    with django_assert_max_num_queries(30):
        assert batch.send_due() == 80
    got = receiver.wait_for(80)
    not_sent = Delivery.objects.exclude(status=Delivery.SUCCESS)
    assert not not_sent.exists(), list(not_sent.values("status", "last_error"))
    paths = {r.path for r in got if r.path.startswith("/pb")}
    assert paths == {f"/pb?c={c.click_id}&f=c{c.pk}" for c in clients}
    assert set(DeliveryAttempt.objects.values_list("number", flat=True)) == {1}


def test_attempts_are_numbered_on_across_batches_and_a_resend(spot, lead, receiver):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    receiver.reply(500)
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    assert d.attempts == 2 and d.status == Delivery.SUCCESS
    from postbacks.delivery.attempts import resend

    resend(Delivery.objects.all())
    drain()
    assert list(d.attempt_log.values_list("number", "success")) == [
        (1, False),
        (2, True),
        (3, True),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_holds_only_its_own_threads(spot, receiver, settings):
    settings.POSTBACKS_SENDER_THREADS = 4
    receiver.slow_paths["/slow"] = 1.5
    slow = OutgoingPostback.objects.create(spot=spot, name="slow", url=receiver.url + "/slow")
    slow.goals.set([spot.goals.get(token="dep")])
    fast = OutgoingPostback.objects.create(spot=spot, name="fast", url=receiver.url + "/fast")
    fast.goals.set([spot.goals.get(token="reg")])
    for client in leads(spot, 2):  # the oldest: claimed and started first
        accept(client, "dep", amount=10)
    for client in leads(spot, 10):
        accept(client, "reg")
    started = time.monotonic()
    sending = threading.Thread(target=batch.send_due)
    sending.start()
    fast_ones = [r for r in receiver.wait_for(12) if r.path == "/fast"]
    sending.join(10)
    assert len(fast_ones) == 10
    # All ten went out on the two free threads while the slow two still waited.
    assert max(r.at for r in fast_ones) - started < 1.0
    assert Delivery.objects.filter(status=Delivery.SUCCESS).count() == 12


def sends_ended(pipeline, count):
    """Wait until `count` sends of the pipeline have ended (on its threads)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with pipeline.lock:
            if len(pipeline.ended) >= count:
                return
        time.sleep(0.01)
    raise AssertionError(f"{count} sends did not end")


@pytest.mark.parametrize(
    ("record_at_most", "recorded"),
    [
        (5000, [0, 0, 6]),  # all sent first, recorded once the claim comes back empty
        (3, [0, 4, 6]),  # four waiting: recorded before the next claim
    ],
)
def test_a_backlog_is_sent_before_its_outcomes_are_recorded(
    spot, receiver, settings, monkeypatch, record_at_most, recorded
):
    settings.POSTBACKS_SENDER_THREADS = 1  # room for two a step
    monkeypatch.setattr(batch, "RECORD_AT_MOST", record_at_most)
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    for client in leads(spot, 6):
        accept(client, "reg")
    pipeline = batch.Pipeline()
    assert pipeline.step() == 2
    seen = []
    for sent in (2, 4, 6):
        sends_ended(pipeline, 2)
        receiver.wait_for(sent)
        pipeline.step()
        seen.append(DeliveryAttempt.objects.count())
    pipeline.close()
    assert seen == recorded
    assert Delivery.objects.filter(status=Delivery.SUCCESS, attempts=1).count() == 6
    assert len(receiver.requests) == 6


def test_a_delivery_that_waits_too_long_for_a_thread_goes_back_unsent(spot, receiver, settings):
    settings.POSTBACKS_SENDER_THREADS = 1
    settings.POSTBACKS_CLAIM_SECONDS = 2.6
    receiver.slow_paths["/pb"] = 0.6
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb", timeout=1)
    first, second = (accept(c, "reg")[2][0] for c in leads(spot, 2))
    # Claimed together; the second could only start after 0.6 s, when the
    # claim no longer covers a whole attempt (2.6 - 1 s timeout - 1 s margin).
    pipeline = batch.Pipeline()
    pipeline.step()
    pipeline.close()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Delivery.SUCCESS
    assert (second.status, second.attempts, second.claimed_until) == (Delivery.PENDING, 0, None)
    assert len(receiver.requests) == 1
    drain()
    assert len(receiver.wait_for(2)) == 2
    assert second.attempt_log.get().number == 1


@pytest.mark.django_db(transaction=True)
def test_the_embedded_loop_drains_a_rate_limit_at_its_rate(spot, receiver, settings):
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = (
        5.0  # far longer than the slots: the loop must wake by itself
    )
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb", max_rps=10)
    for client in leads(spot, 20):
        accept(client, "reg")
    with running_loop():
        times = sorted(r.at for r in receiver.wait_for(20, timeout=10))
    assert len(times) == 20
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 10 per second: 19 gaps of 0.1 s, about two seconds from the first to the last.
    assert min(gaps) > 0.05
    assert 1.7 < times[-1] - times[0] < 3.0


@pytest.mark.django_db(transaction=True)
def test_the_embedded_loop_ends_a_minimum_delay_on_time(spot, receiver, settings):
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 5.0
    OutgoingPostback.objects.create(
        spot=spot, name="p", url=receiver.url + "/pb", min_delay=datetime.timedelta(seconds=0.5)
    )
    with running_loop():
        time.sleep(0.2)  # the loop is asleep, idle, when the delivery is written
        written = time.monotonic()
        accept(Client.objects.create(spot=spot, advert_pixel="px"), "reg")
        [got] = receiver.wait_for(1, timeout=5)
    assert 0.5 <= got.at - written < 1.2


class running_loop:
    """The embedded loop in a thread, stopped (its sends ended) on leaving."""

    def __enter__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=embedded.run_forever, args=(self.stop,))
        self.thread.start()

    def __exit__(self, *exc):
        self.stop.set()
        embedded.wake()
        self.thread.join(10)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SKIP LOCKED is PostgreSQL's; SQLite serialises every writer anyway",
)
def test_loops_claiming_at_once_take_disjoint_batches(transactional_db, receiver):
    spot = Spot.objects.create(name="Race", slug="race")
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    for client in leads(spot, 10):
        accept(client, "reg")
    held, done, first = threading.Event(), threading.Event(), []

    def other_loop():  # claims, and holds its transaction open meanwhile
        try:
            with transaction.atomic():
                first.extend(d.pk for d in batch.claim(6))
                held.set()
                done.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=other_loop)
    other.start()
    assert held.wait(10)
    # Neither waits for the other's locks nor takes its rows.
    second = [d.pk for d in batch.claim(10)]
    done.set()
    other.join(10)
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)
    sending = Delivery.objects.filter(status=Delivery.SENDING)
    assert set(sending.values_list("pk", flat=True)) == set(first) | set(second)

"""A throttling receiver does not use up the attempts (issue 23, point 9): a
429 or 503 with Retry-After is waited for as it asks, and the delivery fails
for good only when the retry schedule's span has passed since its first
attempt, not after ten quick throttled tries. Times run scaled
(POSTBACKS_DELAY_SCALE), so a schedule of hours takes a fraction of a second."""

import time

import pytest

from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.applying import applying_receiver  # noqa: F401 - the `applying` fixture
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")

THROTTLED = (429, 0, {"Retry-After": "1"})


@pytest.fixture
def partner(spot, applying):
    return OutgoingPostback.objects.create(
        spot=spot, name="partner", url=applying.url + "/pb?c={conversion_id}&s={status}"
    )


def test_a_receiver_throttling_for_30_s_gets_the_delivery_when_it_recovers(
    lead, partner, applying, settings
):
    settings.POSTBACKS_DELAY_SCALE = 0.05  # 30 s are 1.5 s, Retry-After: 1 is 50 ms
    started = []

    def recovers_after_30_s(query, n):
        started.append(time.monotonic())
        return THROTTLED if time.monotonic() - started[0] < 1.5 else (200, 0, {})

    applying.rule = recovers_after_30_s
    accept(lead, "dep", amount=10)
    drain(timeout=10)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.SUCCESS
    assert len(applying.arrived) > 10  # more throttled tries than the attempt limit
    assert len(applying.applied) == 1
    # Each throttled try waited as asked: 50 ms, never less.
    times = [at for at, _ in applying.arrived]
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.045


def test_a_receiver_that_never_stops_throttling_fails_it_when_the_schedule_has_passed(
    lead, partner, applying, settings
):
    # Three attempts: a schedule of 1 + 5 minutes, 0.36 s scaled.
    settings.POSTBACKS_MAX_ATTEMPTS = 3
    applying.rule = lambda q, n: (429, 0, {"Retry-After": "20"})  # 20 ms scaled
    accept(lead, "dep", amount=10)
    drain(timeout=10)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_http_status) == (Delivery.FAILED, 429)
    times = [at for at, _ in applying.arrived]
    assert len(times) > 3
    # The span is counted from the first failure, recorded a moment after the
    # first request arrived; three throttled tries alone would end in ~60 ms.
    assert 0.3 <= times[-1] - times[0] < 2.0


def test_throttled_tries_do_not_move_the_schedule_on(lead, partner, applying, settings):
    applying.rule = lambda q, n: THROTTLED if n <= 3 else (500, 0, {})
    accept(lead, "dep", amount=10)
    deadline = time.monotonic() + 5
    while len(applying.arrived) < 4 and time.monotonic() < deadline:
        batch.send_due()
        time.sleep(0.002)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.throttled) == (Delivery.PENDING, 4, 3)
    # The first failure that counts waits the schedule's first step (60 ms
    # scaled, +-20%), not its fourth (30 min, 1.8 s scaled).
    wait = (delivery.next_attempt - delivery.updated).total_seconds()
    assert 0.045 <= wait <= 0.075

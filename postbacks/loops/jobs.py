"""RQ jobs. Thin: the work is in postbacks.batch and postbacks.delivery."""

import datetime
import time

from django.utils import timezone

from postbacks.delivery import attempts, batch
from postbacks.loops import embedded, intake, queue
from postbacks.models import Delivery

# RQ keeps scheduled times in whole seconds, so a scheduled job may start up
# to a second before what it was scheduled for is due. It waits that out
# rather than leave it to the next sweep.
EARLY_START = 2.0


def wait_until(at):
    early = (at - timezone.now()).total_seconds() if at else 0
    if 0 < early <= EARLY_START:
        time.sleep(early)


def wait_to_gather(redis):
    """Wait until LOOK_GATHER has passed since the last look (postbacks/loops/queue.py)."""
    left = redis.pttl(queue.LOOKED_KEY)
    if left > 0:
        time.sleep(left / 1000)
    redis.set(queue.LOOKED_KEY, 1, px=int(queue.LOOK_GATHER * 1000))


def look(at=None, gather=True):
    """Deliveries were written or fall due at `at`: the loop of this worker
    looks now; where no loop runs (a plain worker), the job sends them."""
    if at:
        wait_until(datetime.datetime.fromisoformat(at))
    else:
        redis = queue.get_queue().connection
        if gather:
            wait_to_gather(redis)
        # Before the loop looks: a delivery written from now on makes a new job.
        redis.delete(queue.LOOK_KEY)
    if embedded.running():
        embedded.wake()
        return 0
    return intake.decide_all() + batch.send_due()


def deliver(delivery_id):
    """One delivery (the jobs of earlier versions, one per delivery)."""
    pending = Delivery.objects.filter(pk=delivery_id, status=Delivery.PENDING)
    wait_until(pending.values_list("next_attempt", flat=True).first())
    return attempts.deliver(delivery_id)


def revalue_rates(currency, since=None):
    """A rate of `currency` from the day `since` was added or changed (loops/periodic.py)."""
    from postbacks.loops import periodic

    return periodic.revalue_rates(currency, since)


def import_spend(account_pk, since, until):
    """Pull one ad account's spend of since..until (the ad accounts' admin action)."""
    from postbacks.loops import periodic

    return periodic.import_spend(account_pk, since, until)

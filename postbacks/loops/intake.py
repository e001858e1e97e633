"""The loops' share of the intake: what the web stored and answered at once is
decided here, on the loops' passes, before the due deliveries are sent.

First the clicks' new clients are settled (incoming/settling.py: counted, given
their manager and cost, their lead event and the postbacks that waited for
them), then a batch of queued incoming postbacks is decided
(postbacks/incoming/batches.py), so a postback for a fresh click finds its
client counted.

A loop waits for a batch worth deciding (lingers): INCOMING_BATCH rows, or
the oldest waiting INCOMING_LINGER seconds. The per-batch statements (about
twenty) then serve many rows instead of the one or two that arrived since the
last pass, and under a stream of postbacks the workers take far less of the
machine from the web. A look job (decide_all) and the tests decide at once.

Nobody wakes the loops for a queued row or a click: they look every
INCOMING_LINGER seconds on their own (postbacks/loops/embedded.py), so the
web's answer is its one write and no round trip to Redis, and a row waits
about one linger more when it comes to an idle loop, Redis up or down.
"""

from django.conf import settings
from django.utils import timezone

from crm.models import Client
from postbacks.incoming import batches, settling
from postbacks.models import IncomingPostback


def decide():
    """One batch of each; returns how many rows were taken (0: nothing waits)."""
    return settling.settle_new() + batches.decide_queued()


def ready_in():
    """Seconds until a batch is worth deciding: 0 now, None while nothing waits."""
    waits = [
        wait_for(Client.objects.filter(settled=False), "created"),
        wait_for(IncomingPostback.objects.filter(status=batches.QUEUED), "received"),
    ]
    waits = [w for w in waits if w is not None]
    return min(waits) if waits else None


def wait_for(waiting, stamp):
    """0 when `waiting` holds a batch or its oldest row has lingered enough,
    else the seconds left; None if it is empty. Two index reads at most."""
    oldest = waiting.order_by("id").values_list(stamp, flat=True).first()
    if oldest is None:
        return None
    left = settings.INCOMING_LINGER - (timezone.now() - oldest).total_seconds()
    if left <= 0 or waiting.order_by("id")[settings.INCOMING_BATCH - 1 :].exists():
        return 0
    return left


def decide_all():
    """Until nothing waits (a plain RQ worker's job, a test); returns the rows taken."""
    total = 0
    while taken := decide():
        total += taken
    return total

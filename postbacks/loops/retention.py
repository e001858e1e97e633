"""Log retention: incoming postback rows and delivery attempts older than
their keep setting are removed, in batches, by `manage.py purge_logs` and once
a day by every delivery loop.

What is still needed is never removed: an unmatched postback within the
look-back window may yet find its client, and an unfinished delivery's
attempts count towards its attempt limit. Deliveries themselves, conversions
and clients are not logs and stay.
"""

import datetime
import logging
import time

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback

log = logging.getLogger(__name__)

# Rows per DELETE: short transactions, so intake and delivery never wait long.
BATCH = 1000
DAY = 24 * 3600


def cutoff(days, at=None):
    return (at or timezone.now()) - datetime.timedelta(days=days)


def purgeable_incoming(at=None):
    days = settings.INCOMING_KEEP_DAYS
    if not days:
        return IncomingPostback.objects.none()
    waiting = Q(status=IncomingPostback.UNMATCHED) & Q(
        received__gte=cutoff(settings.POSTBACKS_UNMATCHED_LOOKBACK_DAYS, at)
    )
    old = IncomingPostback.objects.filter(received__lt=cutoff(days, at))
    # A queued row is an event answered 200 and not decided yet: never purged.
    return old.exclude(waiting).exclude(status=IncomingPostback.QUEUED)


UNFINISHED = (Delivery.PENDING, Delivery.SENDING, Delivery.HELD)


def purgeable_attempts(at=None):
    days = settings.ATTEMPTS_KEEP_DAYS
    if not days:
        return DeliveryAttempt.objects.none()
    old = DeliveryAttempt.objects.filter(created__lt=cutoff(days, at))
    return old.exclude(delivery__status__in=UNFINISHED)


def purge(queryset, progress=None):
    """Delete the rows of `queryset` in batches of BATCH, oldest first. Returns how many.

    Oldest first by primary key: the old rows are at the start of the key
    index, so each batch is found without scanning the whole table."""
    removed = 0
    while ids := list(queryset.order_by("pk").values_list("pk", flat=True)[:BATCH]):
        removed += queryset.model.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress.advance(len(ids))
    return removed


_last_run = 0.0


def purge_daily():
    """Purge once a day per process (the delivery loops call this every pass)."""
    global _last_run
    if time.monotonic() - _last_run < DAY and _last_run:
        return
    _last_run = time.monotonic()
    incoming, attempts = purge(purgeable_incoming()), purge(purgeable_attempts())
    if incoming or attempts:
        log.info("Purged %s incoming postbacks and %s delivery attempts", incoming, attempts)

"""How long an unmatched postback waits for its client (incoming/replay.py replays it)."""

import datetime

from django.conf import settings
from django.utils import timezone

from tracker.models import Spot

# The spot's wait is moved on at most this often, not on every unmatched postback.
REFRESH = datetime.timedelta(hours=1)


def lookback():
    return datetime.timedelta(days=settings.POSTBACKS_UNMATCHED_LOOKBACK_DAYS)


def wait_for_client(spot):
    """An unmatched postback of `spot` is stored: new clients look for it. Returns the days."""
    until = timezone.now() + lookback()
    if spot.unmatched_until is None or spot.unmatched_until < until - REFRESH:
        Spot.objects.filter(pk=spot.pk).update(unmatched_until=until)
        spot.unmatched_until = until
    return settings.POSTBACKS_UNMATCHED_LOOKBACK_DAYS

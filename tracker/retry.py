"""A transaction that lost a race to another one is run again, a few times.

PostgreSQL breaks a deadlock by failing one of the transactions in it, and a
serializable transaction by failing the one that would break serial order.
The loser did nothing wrong: run again a moment later it succeeds, so a click
or a postback keeps its client instead of getting a 500. After the last
attempt the error goes up, and the public endpoints answer it with 503 and
Retry-After (tracker/unavailable.py): try again later, nothing was recorded.
"""

import functools
import logging
import random
import time

from django.db import DatabaseError, transaction

log = logging.getLogger(__name__)

# Runs of one transaction at most: the first and three more.
ATTEMPTS = 4
# Seconds before the next run, doubled each time, with jitter so that the two
# losers of one race do not meet again at the same instant.
BACKOFF = 0.02
# SQLSTATEs of a transaction rolled back for another's sake: deadlock detected,
# serialization failure.
CONFLICTS = ("40P01", "40001")


def conflict(exc):
    """True when `exc` is PostgreSQL rolling back a transaction that lost a race."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause or exc, "sqlstate", None) in CONFLICTS


def retried(work, *args, **kwargs):
    """work(*args, **kwargs) in a transaction of its own, run again when it loses a race.

    Inside a caller's transaction it is one attempt: the caller's transaction
    was rolled back along with it, and only that caller can start it again.
    """
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return work(*args, **kwargs)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            # The commit is inside: deferred foreign-key checks can deadlock there.
            with transaction.atomic():
                return work(*args, **kwargs)
        except DatabaseError as e:
            if attempt == ATTEMPTS or not conflict(e):
                raise
            log.warning(
                "%s lost a race (attempt %d of %d), running it again: %s",
                getattr(work, "__qualname__", work),
                attempt,
                ATTEMPTS,
                str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
            time.sleep(BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # the loop returns or raises


def retry_transaction(work):
    """Decorator: `work` runs in a transaction of its own, again when it loses a race."""

    @functools.wraps(work)
    def run(*args, **kwargs):
        return retried(work, *args, **kwargs)

    return run

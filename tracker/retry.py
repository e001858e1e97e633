"""A transaction that lost a race to another one is run again, a few times.

PostgreSQL breaks a deadlock by failing one of the transactions in it, and a
serializable transaction by failing the one that would break serial order.
The loser did nothing wrong: run again a moment later it succeeds, so a click
or a postback keeps its client instead of getting a 500. After the last
attempt the error goes up, and the public endpoints answer it with 503 and
Retry-After (tracker/unavailable.py): try again later, nothing was recorded.

A write that must not be lost (what a sender learnt from a request it made)
is run again for longer, until a deadline of its caller's (retried_until):
also when the connection was lost (a restart, a failover, a terminated
backend) or SQLite stayed locked past its busy timeout, on a new connection.
"""

import contextlib
import functools
import logging
import random
import sqlite3
import time

from django.db import DatabaseError, InterfaceError, OperationalError, transaction

log = logging.getLogger(__name__)

# Runs of one transaction at most: the first and three more.
ATTEMPTS = 4
# Seconds before the next run, doubled each time, with jitter so that the two
# losers of one race do not meet again at the same instant.
BACKOFF = 0.02
# Seconds before the next run of a write whose database was lost or locked,
# doubled each time up to the second figure: a restart takes seconds, and a
# run every few seconds costs a database that is back nothing.
RECONNECT_BACKOFF = (0.1, 3.0)
# SQLSTATEs of a transaction rolled back for another's sake: deadlock detected,
# serialization failure.
CONFLICTS = ("40P01", "40001")

# PostgreSQL error codes of a server that is there but does not serve:
# connection exceptions (class 08), shutting down or starting up (57P01 is
# also a backend terminated by pg_terminate_backend), and out of connection
# slots.
PG_UNAVAILABLE = ("08", "57P01", "57P02", "57P03", "53300")
# SQLite: the file is locked by another writer past the busy timeout, or it
# cannot be opened.
SQLITE_UNAVAILABLE = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN)


def conflict(exc):
    """True when `exc` is PostgreSQL rolling back a transaction that lost a race."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause or exc, "sqlstate", None) in CONFLICTS


def unreachable(exc):
    """True when `exc` says the database cannot be reached, not that a query is wrong."""
    try:
        import psycopg
    except ImportError:  # SQLite only
        psycopg = None
    # Django wraps the driver's error and keeps it as the cause.
    cause = exc.__cause__ if isinstance(exc, (InterfaceError, OperationalError)) else None
    err = cause or exc
    if isinstance(err, InterfaceError):  # Django's own: the connection is closed
        return True
    if psycopg is not None and isinstance(err, psycopg.Error):
        if isinstance(err, psycopg.InterfaceError):
            return True
        if isinstance(err, psycopg.OperationalError):
            # No SQLSTATE: the client gave up (refused, timed out, connection
            # lost, no pooled connection in time: psycopg_pool.PoolTimeout).
            return err.sqlstate is None or err.sqlstate.startswith(PG_UNAVAILABLE)
        return False
    if isinstance(err, sqlite3.OperationalError):
        # The primary result code is the low byte of the extended one.
        return (getattr(err, "sqlite_errorcode", 0) & 0xFF) in SQLITE_UNAVAILABLE
    return False


def retried(work, *args, **kwargs):
    """work(*args, **kwargs) in a transaction of its own, run again when it loses a race.

    Inside a caller's transaction it is one attempt: the caller's transaction
    was rolled back along with it, and only that caller can start it again.
    """
    return _run(work, args, kwargs, None)


def retried_until(until, work, *args, **kwargs):
    """As retried, but run again until time.monotonic() reaches `until`, not a
    number of times: after a lost race, and after a lost connection or a locked
    database too, then on a new connection. After that the last error goes up."""
    return _run(work, args, kwargs, until)


def _run(work, args, kwargs, until):
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return work(*args, **kwargs)
    attempt = 0
    while True:
        attempt += 1
        try:
            # The commit is inside: deferred foreign-key checks can deadlock there.
            with transaction.atomic():
                return work(*args, **kwargs)
        except DatabaseError as e:
            delay = _delay(e, attempt, until)
            if delay is None:
                raise
            log.warning(
                "%s failed (attempt %d), running it again in %.2f s: %s",
                getattr(work, "__qualname__", work),
                attempt,
                delay,
                str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
            if unreachable(e):
                _reconnect()
            time.sleep(delay)


def _delay(error, attempt, until):
    """Seconds to wait before running again after `error`, or None: give up."""
    jitter = random.uniform(0.5, 1.5)
    if until is None:
        if attempt == ATTEMPTS or not conflict(error):
            return None
        return BACKOFF * 2 ** (attempt - 1) * jitter
    if conflict(error):
        delay = BACKOFF * 2 ** min(attempt - 1, 6) * jitter
    elif unreachable(error):
        first, most = RECONNECT_BACKOFF
        delay = min(most, first * 2 ** min(attempt - 1, 6)) * jitter
    else:
        return None
    left = until - time.monotonic()
    return min(delay, left) if left > 0 else None


def _reconnect():
    """Drop a connection that failed: the next query opens a new one (or takes
    a sound one from the pool, which discards a broken one)."""
    with contextlib.suppress(DatabaseError):
        transaction.get_connection().close()


def retry_transaction(work):
    """Decorator: `work` runs in a transaction of its own, again when it loses a race."""

    @functools.wraps(work)
    def run(*args, **kwargs):
        return retried(work, *args, **kwargs)

    return run

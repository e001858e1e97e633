"""The delivery loops' other work: spend from the ad networks, the ECB's rates, revaluing.

Every pass of a delivery loop (postbacks/loops/embedded.py: the web process's
thread without Redis, each RQ worker's sweeper with it) calls tick(), which
runs in that thread what is due:

- the spend of the ad accounts not pulled for SPEND_IMPORT_INTERVAL seconds
  (the last SPEND_IMPORT_DAYS days; an account is claimed in the database,
  so several workers pull it once);
- the ECB's daily rates, once a day per process (ECB_FETCH);
- what was asked of the background: a rate added or changed (in the admin,
  or by the fetch) revalues the conversions and spend it applies to; the ad
  accounts' admin action pulls spend.

Asked work is held in this process for its loop (embedded mode, the loop is
woken), or enqueued as an RQ job with Redis, where the web process runs no
loop: never done in the request that asked. A revaluation lost with a
stopped process is caught up by the daily one of whatever still has no
rate.
"""

import datetime
import logging
import threading
import time

from django.conf import settings

from postbacks import wake as wake_loops
from postbacks.loops import rq

log = logging.getLogger(__name__)

HOUR, DAY = 3600.0, 24 * 3600.0

_lock = threading.Lock()
_revalue = {}  # currency -> earliest day to revalue from
_imports = {}  # ad account pk -> (since, until)
_next = {"spend": 0.0, "ecb": 0.0}  # monotonic times the scheduled work is due


# -- asking ----------------------------------------------------------------------


def rates_changed(sender=None, currency=None, since=None, **kwargs):
    """A rate of `currency` from `since` on was added or changed: revalue, in the background."""
    if rq.redis_mode() and enqueue("postbacks.loops.jobs.revalue_rates", currency, iso(since)):
        return
    with _lock:
        old = _revalue.get(currency)
        _revalue[currency] = since if old is None or since is None else min(old, since)
    wake()


def spend_wanted(sender=None, accounts=(), since=None, until=None, **kwargs):
    """Pull these ad accounts' spend of since..until, in the background."""
    for pk in accounts:
        if rq.redis_mode() and enqueue(
            "postbacks.loops.jobs.import_spend", pk, since.isoformat(), until.isoformat()
        ):
            continue
        with _lock:
            _imports[pk] = (since, until)
    wake()


def enqueue(name, *args):
    try:
        rq.get_queue().enqueue(name, *args)
        return True
    except Exception as e:  # Redis down: this process's loop, if it runs one, does it
        log.warning("Could not enqueue %s (%s); left to this process's loop", name, e)
        return False


def iso(day):
    return day.isoformat() if day else None


def wake():
    wake_loops.look()


def connect():
    from crm import rates
    from tracker.spend_requests import spend_wanted as wanted

    rates.rates_changed.connect(rates_changed, dispatch_uid="postbacks.loops.periodic.rates")
    wanted.connect(spend_wanted, dispatch_uid="postbacks.loops.periodic.spend")


# -- doing -----------------------------------------------------------------------


def tick():
    """Run what is asked or due; called by the delivery loop on every pass.

    A failure is logged and the loop goes on delivering: a network or a rate
    must not hold up the postbacks."""
    with _lock:
        revalue, imports = dict(_revalue), dict(_imports)
        _revalue.clear()
        _imports.clear()
    for pk, (since, until) in imports.items():
        guarded(import_spend, pk, since, until)
    if due("ecb", settings.ECB_FETCH) and guarded(fetch_rates) is not None:
        guarded(revalue_unrated)  # what an earlier revaluation may have missed
    for currency, since in revalue.items():
        guarded(revalue_rates, currency, since)
    if due("spend", settings.SPEND_IMPORT_INTERVAL):
        # Looked at a few times per interval: the claim in the database says
        # which accounts are due, whichever worker last pulled them.
        _next["spend"] = time.monotonic() + min(settings.SPEND_IMPORT_INTERVAL, HOUR) / 4
        guarded(import_due)


def guarded(work, *args):
    try:
        return work(*args)
    except Exception:
        log.exception("%s failed", work.__name__)
        return None


def import_due():
    from crm import spend_api

    return spend_api.import_due()


def due(name, on):
    return bool(on) and time.monotonic() >= _next[name]


def fetch_rates():
    """The ECB's rates of today; the changed ones announce themselves (crm.rates.rates_changed)."""
    from crm import rates

    try:
        since = rates.fetch_and_store()
    except rates.FetchError as e:
        log.warning("Exchange rates not fetched: %s", e)
        _next["ecb"] = time.monotonic() + HOUR
        return None
    _next["ecb"] = time.monotonic() + DAY
    if since:
        log.info("Exchange rates fetched; changed: %s", ", ".join(sorted(since)))
    return since


def revalue_rates(currency, since):
    from crm import revalue

    if isinstance(since, str):
        since = datetime.date.fromisoformat(since)
    changed = revalue.revalue(currency, since)
    if changed:
        log.info("Revalued %s conversion(s) of %s from %s", changed, currency, since)
    return changed


def revalue_unrated():
    from crm import revalue

    return revalue.revalue_unrated()


def import_spend(pk, since, until):
    from crm import spend_api
    from tracker.models import AdAccount

    if isinstance(since, str):
        since, until = datetime.date.fromisoformat(since), datetime.date.fromisoformat(until)
    account = AdAccount.objects.select_related("spot").filter(pk=pk).first()
    if account is None:
        return None  # deleted since it was asked for
    try:
        return spend_api.import_account(account, since, until)
    except spend_api.ApiError as e:
        log.warning("Spend of %s not imported: %s", account, e)  # and shown on the account
        return None

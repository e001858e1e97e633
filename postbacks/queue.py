"""Handing deliveries to whoever sends them: RQ workers, or the embedded loop.

With REDIS_URL set, a job per delivery goes to the RQ queue (scheduled with
enqueue_at when it is due later). Without it, the embedded loop of this
process is woken. Either way a failure to enqueue is only logged: the
delivery is in the database and the sweep finds it.
"""

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)

QUEUE = "default"
# Redis key holding the id of the next scheduled sweep job.
SWEEP_KEY = "postbacks:sweep-job"


def redis_mode():
    return bool(settings.REDIS_URL)


def get_queue():
    import django_rq

    # "auto": enqueue at once. We call it from transaction.on_commit ourselves, and
    # django-rq's own deferral would hide a Redis error from our handler.
    return django_rq.get_queue(QUEUE, commit_mode="auto")


def enqueue(delivery_id, at=None):
    if not redis_mode():
        from postbacks import embedded

        embedded.wake()
        return
    try:
        q = get_queue()
        if at is not None and at > timezone.now():
            q.enqueue_at(at, "postbacks.jobs.deliver", str(delivery_id))
        else:
            q.enqueue("postbacks.jobs.deliver", str(delivery_id))
    except Exception as e:  # Redis down: the sweep re-enqueues it later
        log.warning("Could not enqueue delivery %s (%s); the sweep will retry", delivery_id, e)


def enqueue_on_commit(ids):
    """Enqueue these deliveries once the transaction that wrote them commits."""
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: [enqueue(pk) for pk in ids])


def ensure_sweep_scheduled():
    """Schedule the periodic sweep unless it is scheduled already (it reschedules itself).

    Called when an RQ worker starts and after every sweep, so a worker started
    with --with-scheduler keeps the sweep running, also after Redis lost its data.
    """
    if not redis_mode():
        return False
    try:
        q = get_queue()
        current = q.connection.get(SWEEP_KEY)
        if current:
            job = q.fetch_job(current.decode())
            if job is not None and job.get_status(refresh=True) in (
                "scheduled",
                "queued",
                "started",
            ):
                return False
        schedule_sweep(q)
        return True
    except Exception as e:
        log.warning("Could not schedule the delivery sweep (%s)", e)
        return False


def schedule_sweep(q=None):
    q = q or get_queue()
    delay = datetime.timedelta(seconds=settings.POSTBACKS_SWEEP_INTERVAL)
    job = q.enqueue_in(delay, "postbacks.jobs.sweep")
    q.connection.set(SWEEP_KEY, job.id)
    return job


def sweep(limit=10_000, grace=0):
    """Hand every due delivery that is not in flight to a sender. Returns how many.

    With `grace` seconds only deliveries overdue by that much are taken: the
    periodic sweep leaves alone the ones whose job is simply waiting in the
    queue, so a backlog does not fill Redis with copies.
    """
    from postbacks.delivery import due_ids

    ids = due_ids(limit, overdue=grace)
    if redis_mode():
        for pk in ids:
            enqueue(pk)
    elif ids:
        from postbacks import embedded

        embedded.wake()
    return len(ids)

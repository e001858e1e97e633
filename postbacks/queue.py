"""Handing deliveries to whoever sends them: RQ workers, or the embedded loop.

With REDIS_URL set, a job per delivery goes to the RQ queue (scheduled with
enqueue_at when it is due later). Without it, the embedded loop of this
process is woken. Either way a failure to enqueue is only logged: the
delivery is in the database, and every worker's sweeper (postbacks/worker.py)
sends it when it is due.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)

QUEUE = "default"


def redis_mode():
    return bool(settings.REDIS_URL)


_queues = {}


def get_queue():
    """The queue of this process, kept: a new one per call costs a new Redis
    connection (with its handshake, CLIENT SETINFO and INFO) on every enqueue.
    Keyed by the configured URL, as tests switch it."""
    import django_rq

    url = settings.RQ_QUEUES[QUEUE]["URL"]
    q = _queues.get(url)
    if q is None:
        # "auto": enqueue at once. We call it from transaction.on_commit ourselves, and
        # django-rq's own deferral would hide a Redis error from our handler.
        q = _queues[url] = django_rq.get_queue(QUEUE, commit_mode="auto")
    return q


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
    except Exception as e:  # Redis down: a worker's sweeper sends it when due
        log.warning("Could not enqueue delivery %s (%s); the sweep sends it", delivery_id, e)


def enqueue_on_commit(ids):
    """Enqueue these deliveries once the transaction that wrote them commits."""
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: [enqueue(pk) for pk in ids])

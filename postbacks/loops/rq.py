"""The RQ queue of this process, and whether this installation runs RQ at all."""

from django.conf import settings

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

"""The RQ worker class of `manage.py rqworker` (settings.RQ["WORKER_CLASS"]).

Jobs only say "look at the deliveries now" (postbacks/loops/queue.py); the database
says what is due. Each worker therefore runs a delivery loop in a thread of
its own (postbacks/loops/embedded.py, sending in batches as postbacks/delivery/batch.py
says) that a job wakes, that wakes itself when the next delivery falls due,
and that looks at least every POSTBACKS_SWEEP_INTERVAL seconds whatever Redis
says. It needs nothing that lives in Redis: after Redis restarts empty, loses
a job, or while RQ's scheduler is down, due deliveries (first attempts and
delayed retries) still go out, and no job is ever enqueued twice for them.
Claims keep the loops of several workers from sending one delivery twice.

It is a SimpleWorker: jobs run in the worker process, so a job costs neither
a fork nor new database connections, and it can wake this process's loop.
RQ's work loop quits when Redis goes away in the middle of a job; this worker
starts it again (under a new name, as the old one may still look alive in
Redis) once Redis answers, so neither a Redis restart nor an outage needs a
person to restart workers.
"""

import contextlib
import logging
import os
import threading
import time
import uuid

from django.conf import settings
from rq import SimpleWorker

from postbacks.delivery.batch import send_due
from postbacks.loops import embedded

log = logging.getLogger(__name__)


# Seconds between tries to start the work loop again while Redis is away.
RESTART_WAIT = 2.0


class DeliveryWorker(SimpleWorker):
    def unsubscribe(self):
        """RQ's own, with a bounded wait. redis-py 8's PubSubWorkerThread.stop()
        waits for its thread, which RQ lets sleep up to 60 s between messages:
        once unsubscribed it sleeps the whole 60, so a warm shutdown (SIGTERM)
        could take a minute instead of finishing the attempt in flight."""
        if not self.pubsub_thread:
            return
        channel = self.pubsub_channel_name
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, channel)
        self.pubsub.unsubscribe()
        try:
            self.pubsub_thread.stop(timeout=1)
        except TypeError:  # redis-py before 8: stop() takes no timeout and does not wait
            self.pubsub_thread.stop()
        self.pubsub_thread.join(timeout=1)
        self.pubsub.close()

    def work(self, burst=False, **kwargs):
        if burst:
            # "Do what is due, then exit": what is due without a job too.
            send_due()
            return super().work(burst=True, **kwargs)
        give_way()
        start_sweeper()
        if kwargs.get("max_jobs") or kwargs.get("max_idle_time"):
            return super().work(**kwargs)  # asked to end by itself: no restarts
        while True:
            try:
                super().work(**kwargs)
            except Exception as e:  # Redis gone while the loop started or ended
                log.warning("Worker %s: %s: %s", self.name, type(e).__name__, e)
                with contextlib.suppress(Exception):
                    self.unsubscribe()
            if self._stop_requested or self._shutdown_requested_date:  # SIGTERM or SIGINT
                stop_sweeper()
                return True
            time.sleep(RESTART_WAIT)
            self.name = uuid.uuid4().hex
            log.warning("Worker loop ended without a stop request; working again as %s", self.name)


def give_way():
    """The web first: on a machine that also serves the web, a worker takes the
    CPU the web leaves (WORKER_NICE), so a burst is answered at the web's pace
    and decided and sent right after. 0 leaves the worker's priority alone."""
    if settings.WORKER_NICE > 0:
        with contextlib.suppress(OSError):
            os.nice(settings.WORKER_NICE)


_sweeper = None
_stop = threading.Event()


def start_sweeper():
    global _sweeper
    if _sweeper is None or not _sweeper.is_alive():
        _stop.clear()
        _sweeper = threading.Thread(
            target=embedded.run_forever,
            kwargs={"stop": _stop, "interval": settings.POSTBACKS_SWEEP_INTERVAL},
            name="delivery-sweeper",
            daemon=True,
        )
        _sweeper.start()
        log.info("Delivery loop: looks at least every %ss", settings.POSTBACKS_SWEEP_INTERVAL)
    return _sweeper


def stop_sweeper():
    """A warm shutdown: the sweeper finishes the attempt it is in, then stops."""
    _stop.set()
    embedded.wake()
    if _sweeper is not None:
        _sweeper.join(settings.POSTBACKS_MAX_TIMEOUT + 5)

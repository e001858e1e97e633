"""The delivery loop: sends due deliveries straight from the database.

Without Redis a thread of the web process runs it (the embedded mode); with
Redis each RQ worker runs it as its sweeper (postbacks/worker.py). It sends
in batches (postbacks/batch.py) and sleeps until the next delivery falls due
(a delay, a retry, a rate limit's next slot), until a new one is written in
this process or a job says so (wake), or for `interval` at most: that is
how it sees what other processes wrote without telling it.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from postbacks import queue

log = logging.getLogger(__name__)

_wake = threading.Event()
_started = threading.Lock()
_thread = None
_running = 0  # loops running in this process


def wake():
    _wake.set()


def running():
    return _running > 0


def run_forever(stop=None, first_wait=0.0, interval=None):
    """Send due deliveries until `stop` is set. On stop, the sends in flight end first."""
    global _running
    from postbacks.batch import Pipeline

    stop = stop or threading.Event()
    interval = interval or settings.POSTBACKS_EMBEDDED_POLL
    if first_wait:
        _wake.wait(first_wait)
        _wake.clear()
    pipeline = Pipeline(wake=_wake)
    last_error = None
    told = False  # whether this busy spell has asked the other loops to help
    _running += 1
    try:
        while not stop.is_set():
            _wake.clear()  # before looking: a wake from now on ends the wait below
            if stop.is_set():  # asked to stop (and woken) just before the clear
                break
            try:
                timeout = look(pipeline, interval)
                last_error = None
                if pipeline.more and not told:
                    # A job wakes the loop of one worker; a backlog bigger than
                    # one claim has the others woken too (another look job).
                    queue.look(gather=False)
                    told = True
                elif timeout and not pipeline.in_flight:
                    told = False
            except Exception as e:  # keep delivering after a database hiccup
                # Logged once per distinct error: quickstart starts this loop
                # before its migrate has created the tables.
                if str(e) != last_error:
                    log.warning("Delivery loop: %s: %s", type(e).__name__, e)
                    last_error = str(e)
                timeout = interval
            if timeout:
                close_old_connections()
                _wake.wait(timeout)
    finally:
        _running -= 1
        pipeline.close()
        # The thread ends here: its connections (kept open between passes) too.
        connections.close_all()


def look(pipeline, interval):
    """One pass of the loop; returns how long to sleep before the next (0: go on)."""
    from postbacks import retention
    from postbacks.batch import next_due

    if pipeline.step():
        return 0
    if pipeline.full():
        return interval  # the ends of sends wake it
    retention.purge_daily()
    due = next_due()
    if due is None:
        return interval
    # A hair past the due time, so the claim finds it due.
    return min(interval, max(0.001, (due - timezone.now()).total_seconds() + 0.001))


def start():
    """Start the loop thread once per process."""
    global _thread
    with _started:
        if _thread is None or not _thread.is_alive():
            # The first look waits a little: quickstart starts the web process
            # (and so this thread) before its migrate has created the tables.
            _thread = threading.Thread(
                target=run_forever,
                kwargs={"first_wait": 5.0},
                name="postback-delivery",
                daemon=True,
            )
            _thread.start()
    return _thread

"""The delivery loop: sends due deliveries straight from the database.

Without Redis a thread of the web process runs it (the embedded mode); with
Redis each RQ worker runs it as its sweeper (postbacks/worker.py). It runs the
same postbacks.delivery code a job runs; delays and retries are rows with a
next_attempt time that the loop picks up when due.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

_wake = threading.Event()
_started = threading.Lock()
_thread = None


def wake():
    _wake.set()


def run_forever(stop=None, first_wait=0.0, interval=None):
    """Send due deliveries until `stop` is set, looking again every `interval`
    seconds (POSTBACKS_EMBEDDED_POLL) or when woken."""
    from postbacks.delivery import send_due

    stop = stop or threading.Event()
    interval = interval or settings.POSTBACKS_EMBEDDED_POLL
    if first_wait:
        _wake.wait(first_wait)
        _wake.clear()
    last_error = None
    while not stop.is_set():
        try:
            close_old_connections()
            send_due(stop)
            last_error = None
        except Exception as e:  # keep delivering after a database hiccup
            # Logged once per distinct error: quickstart starts this loop before
            # its migrate has created the tables.
            if str(e) != last_error:
                log.warning("Delivery loop: %s: %s", type(e).__name__, e)
                last_error = str(e)
        finally:
            close_old_connections()
        _wake.wait(interval)
        _wake.clear()


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

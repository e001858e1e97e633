"""The embedded delivery loop: without Redis, a thread of the web process sends.

It runs the same postbacks.delivery code an RQ worker runs; delays and
retries are rows with a next_attempt time that the loop picks up when due.
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


def run_forever(stop=None, first_wait=0.0):
    from postbacks.delivery import process_due

    stop = stop or threading.Event()
    if first_wait:
        _wake.wait(first_wait)
        _wake.clear()
    last_error = None
    while not stop.is_set():
        try:
            close_old_connections()
            while process_due() and not stop.is_set():
                pass
            last_error = None
        except Exception as e:  # keep delivering after a database hiccup
            # Logged once per distinct error: quickstart starts this loop before
            # its migrate has created the tables.
            if str(e) != last_error:
                log.warning("Embedded delivery loop: %s: %s", type(e).__name__, e)
                last_error = str(e)
        finally:
            close_old_connections()
        _wake.wait(settings.POSTBACKS_EMBEDDED_POLL)
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

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


def run_forever(stop=None):
    from postbacks.delivery import process_due

    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            close_old_connections()
            while process_due() and not stop.is_set():
                pass
        except Exception:  # keep delivering after a database hiccup
            log.exception("Embedded delivery loop step failed")
        finally:
            close_old_connections()
        _wake.wait(settings.POSTBACKS_EMBEDDED_POLL)
        _wake.clear()


def start():
    """Start the loop thread once per process."""
    global _thread
    with _started:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=run_forever, name="postback-delivery", daemon=True)
            _thread.start()
    return _thread

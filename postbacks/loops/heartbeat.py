"""Each delivery loop's heartbeat, for the admin's Status page.

A loop beats on every pass (postbacks/loops/embedded.py), written at most
every EVERY seconds: when, since when it runs, how many deliveries it has
handled, and its last error. Where it is kept:

- with REDIS_URL, in one Redis hash: every RQ worker's loop writes there, and
  any web process reads all of them;
- without, in this process's memory: the embedded loop runs in the web
  process that shows the page (under several gunicorn workers each has its
  own loop, and the page shows the one of the process that answers it).

Not the database: a write every few seconds per loop for a figure nobody
queries, and no table may be added for it. Not Django's cache: none is
configured, and its default (memory) is this process's anyway.
"""

import json
import logging
import os
import socket
import threading
import time

from django.utils import timezone

from postbacks.loops import rq

log = logging.getLogger(__name__)

KEY = "postbacks:heartbeats"
EVERY = 5.0
# A loop not heard of for this long is gone (stopped, or its machine): forgotten.
FORGET = 24 * 3600

_here = {}  # loop name -> its last beat, without Redis
_lock = threading.Lock()


def loop_name():
    return f"{socket.gethostname()} pid {os.getpid()} {threading.current_thread().name}"


class Heart:
    """The heartbeat of one loop (one thread)."""

    def __init__(self, interval):
        self.name = loop_name()
        self.interval = interval
        self.started = timezone.now()
        self.next = 0.0

    def beat(self, handled=0, error=None):
        if time.monotonic() < self.next:
            return
        self.next = time.monotonic() + EVERY
        beat = {
            "name": self.name,
            "at": timezone.now().timestamp(),
            "started": self.started.timestamp(),
            "interval": self.interval,
            "handled": handled,
            "error": (error or "")[:300],
        }
        try:
            write(beat)
        except Exception as e:  # Redis away: the loop delivers on; the page shows it late
            log.debug("Heartbeat not written: %s", e)

    def stop(self):
        try:
            forget(self.name)
        except Exception as e:
            log.debug("Heartbeat not removed: %s", e)


def write(beat):
    if rq.redis_mode():
        rq.get_queue().connection.hset(KEY, beat["name"], json.dumps(beat))
        return
    with _lock:
        _here[beat["name"]] = beat


def forget(name):
    if rq.redis_mode():
        rq.get_queue().connection.hdel(KEY, name)
        return
    with _lock:
        _here.pop(name, None)


def beats():
    """Every loop's last beat, newest first; a loop silent for FORGET is dropped."""
    if rq.redis_mode():
        connection = rq.get_queue().connection
        found = [json.loads(v) for v in connection.hgetall(KEY).values()]
    else:
        with _lock:
            found = list(_here.values())
    cutoff = timezone.now().timestamp() - FORGET
    gone = [b["name"] for b in found if b["at"] < cutoff]
    for name in gone:
        forget(name)
    return sorted((b for b in found if b["at"] >= cutoff), key=lambda b: -b["at"])

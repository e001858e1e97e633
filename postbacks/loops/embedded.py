"""The delivery loop: sends due deliveries straight from the database.

Without Redis a thread of the web process runs it (the embedded mode); with
Redis each RQ worker runs it as its sweeper (postbacks/loops/worker.py). It sends
in batches (postbacks/delivery/batch.py) and sleeps until the next delivery falls due
(a delay, a retry, a rate limit's next slot), until a new one is written in
this process or a job says so (wake), or for `interval` at most: that is
how it sees what other processes wrote without telling it.
"""

import gc
import logging
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from postbacks.loops.heartbeat import Heart
from postbacks.wake import look as ask_for_help
from tracker import serving

log = logging.getLogger(__name__)

_wake = threading.Event()
_started = threading.Lock()
_thread = None
_running = 0  # loops running in this process

# A hold: the loop sends nothing until released or until this time (monotonic).
_released = threading.Event()
_released.set()
_held_until = 0.0
# The longest a hold lasts: a server that never comes up does not keep the
# loop from delivering elsewhere.
HOLD_AT_MOST = 60.0
# The shortest wait of an idle loop between two looks for queued rows: an
# INCOMING_LINGER of 0 (decide at once) must not have it spin.
LOOK_AT_LEAST = 0.05
# Seconds a thread keeps the GIL while another waits for it (start()).
SWITCH_INTERVAL = 0.0005


def wake():
    _wake.set()


def hold(**signal_kwargs):
    """Send nothing until release(): this process's server is not listening yet."""
    global _held_until
    _held_until = time.monotonic() + HOLD_AT_MOST
    _released.clear()


def release(**signal_kwargs):
    _released.set()
    wake()


def held():
    """How long the hold may last still, in seconds (0: not held)."""
    if _released.is_set():
        return 0.0
    return max(0.0, _held_until - time.monotonic())


serving.setting_up.connect(hold, dispatch_uid="postbacks.loops.embedded.hold")
serving.listening.connect(release, dispatch_uid="postbacks.loops.embedded.release")


def running():
    return _running > 0


def run_forever(stop=None, first_wait=0.0, interval=None):
    """Send due deliveries until `stop` is set. On stop, the sends in flight end first."""
    global _running
    from postbacks.delivery.batch import Pipeline

    stop = stop or threading.Event()
    interval = interval or settings.POSTBACKS_EMBEDDED_POLL
    # What the process holds by now (Django, the apps, their modules) lives
    # as long as it does: frozen, the collector's full passes no longer walk
    # it. A loop's batches make a million objects a minute, and those passes
    # walked the process's 180,000 each time: up to a tenth of a busy loop's CPU.
    gc.freeze()
    if first_wait:
        _wake.wait(first_wait)
        _wake.clear()
    pipeline = Pipeline(wake=_wake)
    heart = Heart(interval)  # the admin's Status page shows it
    last_error = None
    told = False  # whether this busy spell has asked the other loops to help
    _running += 1
    try:
        while not stop.is_set():
            heart.beat(pipeline.handled, last_error)
            if wait := held():
                _released.wait(min(wait, interval))  # then stop is looked at again
                continue
            _wake.clear()  # before looking: a wake from now on ends the wait below
            if stop.is_set():  # asked to stop (and woken) just before the clear
                break
            try:
                timeout = look(pipeline, interval)
                last_error = None
                if pipeline.more and not told:
                    # A job wakes the loop of one worker; a backlog bigger than
                    # one claim has the others woken too (another look job).
                    ask_for_help(gather=False)
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
        heart.stop()
        pipeline.close()
        # The thread ends here: its connections (kept open between passes) too.
        connections.close_all()


def look(pipeline, interval):
    """One pass of the loop; returns how long to sleep before the next (0: go on)."""
    from postbacks.delivery.batch import next_due
    from postbacks.loops import intake, periodic, retention

    # Postbacks and clicks answered by the web first: they make deliveries.
    ready_in = intake.ready_in()
    decided = intake.decide() if ready_in == 0 else 0
    if pipeline.step() or decided:
        return 0
    # Nobody wakes a loop for queued rows (the web does not, to answer on one
    # write): it comes back when the batch's linger ends, or looks again after
    # one linger.
    interval = min(interval, ready_in or max(settings.INCOMING_LINGER, LOOK_AT_LEAST))
    if pipeline.full():
        return interval  # the ends of sends wake it
    retention.purge_daily()
    periodic.tick()  # spend, exchange rates, revaluing (postbacks/loops/periodic.py)
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
            # (and so this thread) before its migrate has created the tables;
            # then it holds the loop until its server listens (tracker/serving.py).
            # The loop shares the GIL with the requests of this process: a
            # request that gives the GIL up (every query, every socket read)
            # waits for the loop's thread to be told to yield it. Python tells
            # it after the switch interval, 5 ms by default: a request doing a
            # dozen such waits answers tens of milliseconds late while a batch
            # is decided. 0.5 ms bounds that wait.
            sys.setswitchinterval(SWITCH_INTERVAL)
            _thread = threading.Thread(
                target=run_forever,
                kwargs={"first_wait": 5.0},
                name="postback-delivery",
                daemon=True,
            )
            _thread.start()
    return _thread

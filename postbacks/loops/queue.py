"""Telling the delivery loops to look: RQ jobs, or a wake of the embedded loop.

The database says what is due; a job only says "look now" (or "look at this
time" for a retry or a delay). With REDIS_URL set, writers enqueue a
`postbacks.loops.jobs.look` job, at most one waiting at a time: a short-lived key
set with NX stands for it, and the job deletes the key before it wakes its
worker's loop, so a delivery written after that makes a new job, and one
written before is seen by the loop it woke. A burst of ten thousand
postbacks so costs a Redis round trip each, not a job each. At a steady
trickle that would still be a job and a pass of a loop per delivery, which
cost more than sending it: so a look job starts at most every LOOK_GATHER
seconds (a second key, set for that long when a job looks), and what is
written while it waits joins its batch. Without Redis
the embedded loop of this process is woken. Either way a failure to enqueue
is only logged: the delivery is in the database, and every loop sends it
when it is due (postbacks/loops/worker.py).
"""

import logging

from django.utils import timezone

from postbacks.loops.rq import get_queue, redis_mode

log = logging.getLogger(__name__)

# The key standing for a waiting look job; it expires in case the job is lost.
LOOK_KEY = "postbacks:look"
LOOK_TTL = 10
# The key set for LOOK_GATHER seconds when a look job looks.
LOOKED_KEY = "postbacks:looked"
LOOK_GATHER = 0.05


def look(at=None, gather=True):
    """Have a delivery loop look at the due deliveries now, or at `at`.
    `gather=False`: a busy loop asks for help, and its job does not wait."""
    if not redis_mode():
        from postbacks.loops import embedded

        embedded.wake()  # the loop works out when the next delivery is due
        return
    try:
        q = get_queue()
        if at is not None and at > timezone.now():
            q.enqueue_at(at, "postbacks.loops.jobs.look", at.isoformat())
        elif q.connection.set(LOOK_KEY, 1, nx=True, ex=LOOK_TTL):
            q.enqueue("postbacks.loops.jobs.look", **({} if gather else {"gather": False}))
    except Exception as e:  # Redis down: the loops send it when due
        log.warning("Could not enqueue a look at the deliveries (%s); the sweep sends them", e)

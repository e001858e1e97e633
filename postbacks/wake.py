"""Telling the delivery loops to look, from code that may not import them.

Whoever writes a delivery (fan-out, a retry, a postback switched back on)
says "look now" or "look at this time" here. The loops hand in how that is
done when the app is ready (postbacks/loops/queue.py: an RQ job with Redis,
a wake of the embedded loop without), so the wings that write deliveries
never import the loops that send them. Before that (a migration, a script
without the app) nothing is woken, and nothing is lost: every loop sends
each due delivery it finds in the database.
"""

from django.db import transaction

_look = None


def set_look(look):
    """The loops' way to look: look(at=None, gather=True)."""
    global _look
    _look = look


def look(at=None, gather=True):
    """Have a delivery loop look at the due deliveries now, or at `at`."""
    if _look is not None:
        _look(at, gather)


def look_on_commit(times=(None,)):
    """Look once the transaction that wrote deliveries due at `times` commits."""
    times = set(times)
    if times:
        transaction.on_commit(lambda: [look(at) for at in times])

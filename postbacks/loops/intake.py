"""The loops' share of the intake: what the web stored and answered at once is
decided here, on every pass, before the due deliveries are sent.

First the clicks' new clients are settled (incoming/settling.py: counted, given
their manager and cost, their lead event and the postbacks that waited for
them), then a batch of queued incoming postbacks is decided
(postbacks/incoming/batches.py), so a postback for a fresh click finds its
client counted.
"""

from postbacks.incoming import batches, settling


def decide():
    """One batch of each; returns how many rows were taken (0: nothing waits)."""
    return settling.settle_new() + batches.decide_queued()


def decide_all():
    """Until nothing waits (a plain RQ worker's job, a test); returns the rows taken."""
    total = 0
    while taken := decide():
        total += taken
    return total

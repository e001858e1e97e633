"""An event's way out: which deliveries it makes (fanout), their exact request
(render, pixels), the sender and its guard (sender), one attempt (attempts)
and a batch of them (batch), their order (order), what failing means now
(failing), and the check of an outgoing postback (validation). Nothing here
imports the loops that run it (postbacks/loops/); a write wakes them through
postbacks/wake.py.

Delivering one Delivery: claim, build, send, log, then retry or finish.

Design constraints, in the order they shaped the code:

1. The database is the truth. A job in Redis only says "look at this delivery
   now"; losing it (Redis down or restarted empty, worker killed) delays a
   postback, never loses it, because every worker's sweeper sends each due
   delivery that is not in flight straight from the database (loops/worker.py).
2. Several senders may get the same delivery id. Only the one whose UPDATE
   of the pending row changes one row sends it.
3. One attempt has one deadline: the send ends by the target's timeout, which
   is at most POSTBACKS_MAX_TIMEOUT, and the claim (POSTBACKS_CLAIM_SECONDS,
   checked to be at least twice that) outlasts it, so a second sender only
   ever follows a dead one. RQ's job timeout is above the claim, so it never
   cuts an attempt short either.
4. Every attempt ends as a DeliveryAttempt with the exact request sent
   (secrets masked), also one cut short, and counts towards the attempt limit
   and auto-disable.
5. A rate-limited postback defers the delivery to its next free slot; a
   deferral is not an attempt and never fails a delivery.
6. A switched-off postback holds its deliveries (HELD); switching it on
   sends them. Nothing is dropped because a target is off.
7. Per conversion and target, events go out in the order they happened, and
   a status change made obsolete before it was sent is superseded (order.py).
   Each reports the values it was made with (`reported`), however late it goes.
8. The retry budget is time, the schedule's span: a receiver that throttles
   (Retry-After) is waited for as it asks, without using up the attempts.
"""

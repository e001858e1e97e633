"""Per conversion and target, events go out in the order they happened.

A receiver (a partner's tracker, an ad network) applies what it gets in
arrival order, so the last event it gets is the state it keeps. Hence:

1. A delivery waits while an earlier delivery of its conversion to the same
   target (outgoing postback, pixel or goal's external postback) is not done
   with: pending, being sent, retrying or held. `ready_q` and `ready_sql` say
   this to the claims; the conversion's foreign-key index finds the few
   siblings. Deliveries of other conversions are not held up.
2. A status change that a newer status change to the same target made
   obsolete before it was sent is *superseded*, not sent: sent after the
   newer one (a retry) it would undo it; sent before it only delays it. The
   first delivery of a conversion to a target is never superseded: it makes
   the conversion at the receiver. An amount change is never superseded
   either: each one says what the amount was before it.
"""

from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from postbacks.models import Delivery

TARGETS = ("postback_id", "pixel_id", "external_goal_id")


def same_target_q(prefix="", **outer):
    """Deliveries to the target of `outer` (OuterRef or values, by TARGETS name)."""
    q = Q()
    for name in TARGETS:
        value = outer.get(name)
        if value is not None:
            q |= Q(**{f"{prefix}{name}": value})
    return q


def ready_q():
    """Deliveries no earlier unfinished delivery of their conversion to their target holds up."""
    earlier = Delivery.objects.filter(
        same_target_q(**{name: OuterRef(name) for name in TARGETS}),
        conversion_id=OuterRef("conversion_id"),
        status__in=Delivery.UNFINISHED,
        created__lt=OuterRef("created"),
    )
    return ~Exists(earlier)


def ready_sql(alias):
    """ready_q as SQL for the raw claims: `alias` names the delivery row tested.
    A NULL target column matches nothing, so only the real target compares.

    Only the conversion's index is for the planner (COALESCE hides the
    others; no key is 0): given the targets' and the status's too, PostgreSQL
    without statistics of a fresh burst (autovacuum comes minutes later)
    combined them for each row tested, reading a busy target's index whole
    each time, a second for a claim of a hundred."""
    q = connection.ops.quote_name
    table = q(Delivery._meta.db_table)
    unfinished = ", ".join(f"'{s}'" for s in Delivery.UNFINISHED)  # our constants
    same = " OR ".join(f"COALESCE(e.{t}, 0) = {alias}.{t}" for t in TARGETS)
    return (
        f"NOT EXISTS (SELECT 1 FROM {table} e WHERE e.conversion_id = {alias}.conversion_id "
        f"AND COALESCE(e.status, '') IN ({unfinished}) AND e.created < {alias}.created "
        f"AND ({same}))"
    )


def is_status_change(d):
    return bool(d.previous_status) and d.previous_status != d.event_status


def target_of(d):
    return {name: getattr(d, name) for name in TARGETS if getattr(d, name) is not None}


def supersede(ids, newer_id, statuses=(Delivery.PENDING, Delivery.HELD)):
    """Mark `ids` superseded by the delivery `newer_id`, those still in `statuses`:
    one a loop claimed meanwhile is being sent, and its sender decides."""
    return Delivery.objects.filter(pk__in=ids, status__in=statuses).update(
        status=Delivery.SUPERSEDED,
        superseded_by=newer_id,
        last_error=f"Superseded by {newer_id}: a newer status change of the conversion "
        "to this target came before it was sent.",
        claimed_until=None,
        next_attempt=None,
        updated=timezone.now(),
    )


def supersede_earlier(conversion, created):
    """At fan-out: the new deliveries of a status change make the waiting
    status changes of this conversion to their targets obsolete. One read of
    the conversion's deliveries (a conversion has a few)."""
    new = [d for d in created if d.status in (Delivery.PENDING, Delivery.HELD)]
    if not new or not is_status_change(new[0]):
        return 0
    new_ids = {d.pk for d in created}
    older = [
        d
        for d in Delivery.objects.filter(conversion=conversion)
        .exclude(status=Delivery.SKIPPED)
        .only("created", "status", "event_status", "previous_status", *TARGETS)
        .order_by("created")
        if d.pk not in new_ids
    ]
    done = 0
    for d in new:
        siblings = [o for o in older if target_of(o) == target_of(d)]
        waiting = [
            o.pk
            for o in siblings[1:]  # the first never
            if o.status in (Delivery.PENDING, Delivery.HELD) and is_status_change(o)
        ]
        if waiting:
            done += supersede(waiting, d.pk)
    return done


def newer_change(d):
    """The id of a newer status change of `d`'s conversion to its target that
    makes `d` (a status change, not the first to it) obsolete, or None. Asked
    when `d` failed an attempt: retried, it would land after the newer one."""
    if not is_status_change(d) or not target_of(d):
        return None
    mine = Subquery(Delivery.objects.filter(pk=d.pk).values("created")[:1])
    siblings = Delivery.objects.filter(same_target_q(**target_of(d)), conversion_id=d.conversion_id)
    siblings = siblings.exclude(status__in=[Delivery.SKIPPED, Delivery.SUPERSEDED])
    if not siblings.filter(created__lt=mine).exists():
        return None  # the first of its conversion to this target
    newer = siblings.filter(created__gt=mine).exclude(previous_status="")
    for pk, event_status, previous_status in newer.order_by("created").values_list(
        "pk", "event_status", "previous_status"
    ):
        if previous_status != event_status:
            return pk
    return None

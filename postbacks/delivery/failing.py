"""What is failing now: deliveries that retry or failed, per target, and the backlog.

A delivery is *retrying* when it is pending (or being sent again) after at
least one failed attempt of its current round (Delivery.attempts > 0; a resend
starts a round anew). It is *failing now* when it is retrying, or failed within
the window (24 h by default).

Return shapes (the spot page and the admin home read these):

failing_by_postback(spot_ids=None, postback_ids=None, hours=24)
    -> {outgoing postback id: Failing}, only postbacks with a failing delivery.
failing_targets(spot_ids=None, hours=24)
    -> [Failing], every target with a failing delivery (outgoing postbacks,
       pixels, goals' external postbacks), most failing first.
    Failing fields: kind ("postback", "pixel" or "external"), target_id (the
    postback's, pixel's or goal's id), spot_id, name (as the delivery list
    names the target), retrying (int), failed (int, within the window),
    total (retrying + failed), last_error (str) and last_http_status
    (int or None) of its newest failing delivery, last_at (datetime of it).
backlog(spot_ids=None)
    -> Backlog(due, oldest_due, oldest_age, scheduled): due (int) deliveries
       a worker may take now; oldest_due (aware datetime or None) since when
       the oldest of them is due; oldest_age (timedelta or None) how long
       that is; scheduled (int) pending ones waiting for a later time (a retry,
       a minimum delay, a rate slot).
"""

import datetime
from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from postbacks.delivery import order
from postbacks.delivery.attempts import due_q
from postbacks.models import Delivery, OutgoingPostback
from tracker.models import Goal, Pixel

RETRYING = "retrying"
WINDOW_HOURS = 24


def retrying_q():
    """Deliveries waiting for (or in) a retry after a failed attempt."""
    return Q(status__in=[Delivery.PENDING, Delivery.SENDING], attempts__gt=0)


def waiting_q():
    """Pending deliveries not tried yet in their round (new, or resent)."""
    return Q(status=Delivery.PENDING, attempts=0)


def failing_q(hours=WINDOW_HOURS):
    since = timezone.now() - datetime.timedelta(hours=hours)
    return retrying_q() | Q(status=Delivery.FAILED, updated__gte=since)


def state(delivery):
    """The state the list shows: the stored status, with *retrying* told apart
    from a pending delivery not tried yet."""
    if delivery.status in (Delivery.PENDING, Delivery.SENDING) and delivery.attempts > 0:
        return RETRYING
    return delivery.status


@dataclass(frozen=True)
class Failing:
    kind: str
    target_id: int
    spot_id: int
    name: str
    retrying: int
    failed: int
    last_error: str
    last_http_status: int | None
    last_at: datetime.datetime

    @property
    def total(self):
        return self.retrying + self.failed


@dataclass(frozen=True)
class Backlog:
    due: int
    oldest_due: datetime.datetime | None
    oldest_age: datetime.timedelta | None
    scheduled: int


TARGETS = (
    ("postback", "postback_id", OutgoingPostback, str),
    ("pixel", "pixel_id", Pixel, str),
    ("external", "external_goal_id", Goal, lambda goal: f"External postback of {goal}"),
)


def _scoped(spot_ids):
    rows = Delivery.objects.all()
    return rows if spot_ids is None else rows.filter(spot_id__in=list(spot_ids))


def failing_targets(spot_ids=None, hours=WINDOW_HOURS, postback_ids=None):
    rows = _scoped(spot_ids).filter(failing_q(hours))
    if postback_ids is not None:
        rows = rows.filter(postback_id__in=list(postback_ids))
    found = []
    # Asked about postbacks only: pixels and external postbacks are not read.
    kinds = TARGETS[:1] if postback_ids is not None else TARGETS
    for kind, column, model, name_of in kinds:
        groups = list(
            rows.filter(**{f"{column}__isnull": False})
            .values(column, "spot_id")
            .annotate(
                retrying=Count("pk", filter=retrying_q()),
                failed=Count("pk", filter=Q(status=Delivery.FAILED)),
                last_at=Max("updated"),
            )
            .order_by()
        )
        if not groups:
            continue
        targets = model.objects.in_bulk({g[column] for g in groups})
        for g in groups:
            # The newest failing delivery says why: one short read per failing target.
            last = (
                rows.filter(**{column: g[column], "spot_id": g["spot_id"]})
                .order_by("-updated")
                .values("last_error", "last_http_status")
                .first()
            )
            target = targets.get(g[column])
            found.append(
                Failing(
                    kind=kind,
                    target_id=g[column],
                    spot_id=g["spot_id"],
                    name=name_of(target) if target else "(deleted target)",
                    retrying=g["retrying"],
                    failed=g["failed"],
                    last_error=last["last_error"],
                    last_http_status=last["last_http_status"],
                    last_at=g["last_at"],
                )
            )
    return sorted(found, key=lambda f: (-f.total, f.name))


def failing_by_postback(spot_ids=None, postback_ids=None, hours=WINDOW_HOURS):
    return {
        f.target_id: f
        for f in failing_targets(spot_ids, hours, postback_ids)
        if f.kind == "postback"
    }


def backlog(spot_ids=None):
    at = timezone.now()
    rows = _scoped(spot_ids)
    # One waiting behind an earlier event of its conversion is not late (order.py).
    due = rows.filter(due_q(at), order.ready_q()).aggregate(
        count=Count("pk"), oldest=Min(Coalesce(F("next_attempt"), F("created")))
    )
    scheduled = rows.filter(status=Delivery.PENDING, next_attempt__gt=at).count()
    oldest = due["oldest"]
    return Backlog(
        due=due["count"],
        oldest_due=oldest,
        oldest_age=max(at - oldest, datetime.timedelta(0)) if oldest else None,
        scheduled=scheduled,
    )

"""The admin's Status page: is the tracker keeping up? (as Keitaro's)

What an operator looks at when a partner says "our postbacks are late":
the queues and the age of their oldest row (deliveries due, retrying, held,
scheduled; incoming postbacks unmatched or not yet decided), each delivery
loop's heartbeat (postbacks/loops/heartbeat.py), the last error of every
failing target (postbacks/delivery/failing.py), and the last hour per five
minutes, from the tables, with a chart. Superusers and team leads only: it
shows every spot's postbacks.

The same figures feed the backlog gauges of /metrics (`gauges`, handed to
tracker/metrics.py by postbacks.apps).
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from crm import charts
from crm.visibility import sees_all
from postbacks.admin.dashboard import age_text
from postbacks.delivery import failing
from postbacks.delivery.attempts import due_q
from postbacks.incoming import batches
from postbacks.loops import heartbeat
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback

# The rates: the last hour in steps of five minutes.
STEP_MINUTES, STEPS = 5, 12
# Failing targets listed; a longer list is the deliveries' list's job.
FAILING_SHOWN = 50


def may_open(request):
    return sees_all(request.user)


@dataclass
class Queue:
    name: str
    count: int
    oldest: datetime.datetime | None  # the oldest row's time, as `since` says
    since: str  # what the age counts from
    link: str

    @property
    def age(self):
        return timezone.now() - self.oldest if self.oldest else None

    @property
    def age_text(self):
        return age_text(self.age)


def oldest(rows, column):
    return rows.aggregate(n=Count("pk"), at=Min(column))


def changelist(name, **query):
    return reverse(f"admin:postbacks_{name}_changelist") + "?" + urlencode(query)


def queues():
    """The queues an operator watches, with the age of the oldest row of each."""
    at = timezone.now()
    deliveries = Delivery.objects.all()
    due = oldest(deliveries.filter(due_q(at)), Coalesce(F("next_attempt"), F("created")))
    retrying = oldest(deliveries.filter(failing.retrying_q()), "created")
    held = oldest(deliveries.filter(status=Delivery.HELD), "updated")
    # First tries waiting for a minimum delay or a rate slot (retries are counted above).
    later = oldest(deliveries.filter(failing.waiting_q(), next_attempt__gt=at), "created")
    incoming = IncomingPostback.objects.all()
    unmatched = oldest(incoming.filter(status=IncomingPostback.UNMATCHED), "received")
    # Queued for the workers, or received by a spot that answers after processing.
    undecided = oldest(
        incoming.filter(status__in=[IncomingPostback.QUEUED, IncomingPostback.RECEIVED]),
        "received",
    )
    return [
        Queue("Deliveries due now", due["n"], due["at"], "due", changelist("delivery")),
        Queue(
            "Deliveries retrying",
            retrying["n"],
            retrying["at"],
            "made",
            changelist("delivery", status=failing.RETRYING),
        ),
        Queue(
            "Deliveries held (postback off)",
            held["n"],
            held["at"],
            "held",
            changelist("delivery", status=Delivery.HELD),
        ),
        Queue(
            "Deliveries scheduled later (first try)",
            later["n"],
            later["at"],
            "made",
            changelist("delivery", status=Delivery.PENDING),
        ),
        Queue(
            "Incoming unmatched (waiting for their client)",
            unmatched["n"],
            unmatched["at"],
            "received",
            changelist("incomingpostback", status__exact=IncomingPostback.UNMATCHED),
        ),
        Queue(
            "Incoming not yet decided",
            undecided["n"],
            undecided["at"],
            "received",
            changelist("incomingpostback", status__exact=IncomingPostback.QUEUED),
        ),
    ]


def loops():
    """Each delivery loop's last heartbeat, and whether it is late: not heard of
    for two of its passes and a beat's interval (it looks at least every
    `interval` seconds, and writes at most every heartbeat.EVERY)."""
    now = timezone.now().timestamp()
    found = []
    for beat in heartbeat.beats():
        age = max(0.0, now - beat["at"])
        found.append(
            {
                **beat,
                "age": age_text(datetime.timedelta(seconds=age)),
                "since": datetime.datetime.fromtimestamp(beat["started"], datetime.UTC),
                "late": age > 2 * beat["interval"] + heartbeat.EVERY + 5,
            }
        )
    return found


def failing_targets():
    """Every failing target with its newest failing delivery's error, and a link
    to its deliveries that need a look."""
    lines = []
    for target in failing.failing_targets()[:FAILING_SHOWN]:
        status = failing.RETRYING if target.retrying else Delivery.FAILED
        query = {"spot__id__exact": target.spot_id, "status": status}
        if target.kind == "postback":
            query["postback__id__exact"] = target.target_id
        http = f"HTTP {target.last_http_status}" if target.last_http_status else ""
        lines.append(
            {
                "target": target,
                "reason": target.last_error or http,
                "link": changelist("delivery", **query),
            }
        )
    return lines


def steps(now):
    """The starts of the last hour's five-minute steps, oldest first."""
    end = now.replace(second=0, microsecond=0)
    end -= datetime.timedelta(minutes=end.minute % STEP_MINUTES)
    end += datetime.timedelta(minutes=STEP_MINUTES)  # the step now running ends here
    width = datetime.timedelta(minutes=STEP_MINUTES)
    return [end - width * (STEPS - k) for k in range(STEPS)], width


def counts_per_step(rows, column, starts, width, **kinds):
    """{kind: [count per step]} in one query: a filtered count per step and kind."""
    counts = {}
    for name, q in kinds.items():
        for k, start in enumerate(starts):
            window = Q(**{f"{column}__gte": start, f"{column}__lt": start + width})
            counts[f"{name}_{k}"] = Count("pk", filter=window & q)
    got = rows.filter(**{f"{column}__gte": starts[0]}).aggregate(**counts)
    return {name: [got[f"{name}_{k}"] for k in range(len(starts))] for name in kinds}


class Tick(str):
    """A step's label as the chart writes it: crm.charts formats its x values
    as days ("%m-%d"); a step is a time of day, written as it is."""

    def __format__(self, spec):
        return str(self)


def rates(now=None):
    """The last hour per five minutes: delivery attempts (delivered, failed) and
    incoming postbacks, with the chart of them."""
    starts, width = steps(now or timezone.now())
    attempts = counts_per_step(
        DeliveryAttempt.objects.filter(test=False),
        "created",
        starts,
        width,
        delivered=Q(success=True),
        failed=Q(success=False),
    )
    incoming = counts_per_step(IncomingPostback.objects.all(), "received", starts, width, all=Q())
    series = [
        ("Delivered", attempts["delivered"]),
        ("Failed attempts", attempts["failed"]),
        ("Incoming postbacks", incoming["all"]),
    ]
    labels = [Tick(f"{timezone.localtime(s):%H:%M}") for s in starts]
    chart = charts.line_chart(
        labels,
        series,
        chart_id="status-chart",
        label="Deliveries and incoming postbacks per 5 minutes, the last hour",
        width=900,
    )
    table = [{"name": name, "values": values, "total": sum(values)} for name, values in series]
    return {"chart": chart, "labels": labels, "table": table}


def view(request):
    """GET /admin/status/: the page."""
    if not may_open(request):
        raise PermissionDenied("The Status page is for team leads and superusers.")
    context = {
        **admin.site.each_context(request),
        "title": "Status",
        "queues": queues(),
        "loops": loops(),
        "loops_shared": bool(settings.REDIS_URL),
        "failing": failing_targets(),
        "rates": rates(),
        "disabled": OutgoingPostback.objects.filter(enabled=False).count(),
    }
    return TemplateResponse(request, "admin/postbacks/status.html", context)


# -- the gauges of /metrics ---------------------------------------------------------


def gauges():
    """[(name, help, value)] of the backlog, for tracker/metrics.py."""
    backlog = failing.backlog()
    rows = Delivery.objects.aggregate(
        pending=Count("pk", filter=Q(status__in=[Delivery.PENDING, Delivery.SENDING])),
        held=Count("pk", filter=Q(status=Delivery.HELD)),
    )
    age = backlog.oldest_age.total_seconds() if backlog.oldest_age else 0.0
    return [
        (
            "tracker_deliveries_pending",
            "Deliveries not done yet: due, scheduled for later, or being sent.",
            rows["pending"],
        ),
        ("tracker_deliveries_due", "Deliveries a worker may take now.", backlog.due),
        (
            "tracker_deliveries_oldest_due_age_seconds",
            "How long the oldest delivery due now has been due (0: none is due).",
            age,
        ),
        ("tracker_deliveries_held", "Deliveries held while their postback is off.", rows["held"]),
        *incoming_gauges(),
        (
            "tracker_outgoing_postbacks_disabled",
            "Outgoing postbacks switched off (by hand, or after failing too often).",
            OutgoingPostback.objects.filter(enabled=False).count(),
        ),
        (
            "tracker_incoming_postbacks_unmatched",
            "Incoming postbacks waiting for their client (unmatched).",
            IncomingPostback.objects.filter(status=IncomingPostback.UNMATCHED).count(),
        ),
    ]


def incoming_gauges():
    queued, waited = batches.backlog()
    return [
        ("tracker_incoming_queued", "Incoming postbacks stored, not decided yet.", queued),
        (
            "tracker_incoming_oldest_queued_age_seconds",
            "How long the oldest queued incoming postback has waited (0: none).",
            waited,
        ),
    ]

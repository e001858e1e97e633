"""The admin home: what a team lead looks at first thing in the morning.

Today's and yesterday's figures per spot (from the statistics rollup, as the
statistics page reads them), the last two weeks as charts, what is failing
now (postbacks/delivery/failing.py), unmatched postbacks waiting for their client, the
delivery backlog, and, on an empty install, the four steps to a first
conversion. tracker's site shows it: tracker imports neither crm nor
postbacks, so postbacks.apps hands it `context` (AdminSite.dashboard).

A manager sees the figures of their own clients (crm.visibility.own_figures)
and the postbacks of their own spots; unmatched postbacks have no client yet,
so only those who see every client see them.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from crm import charts, report, values
from crm.visibility import own_figures, sees_all
from postbacks.delivery import failing
from postbacks.incoming import batches
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback
from tracker.models import LEAD, REVENUE_GOALS, Pixel, Spot

CHART_DAYS = 14
# Failing targets listed on the home page; the rest are one click away.
FAILING_SHOWN = 8


@dataclass
class DayFigures:
    leads: int = 0
    regs: int = 0
    deposits: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, row):
        counts = row.counts
        self.leads += row.leads
        self.regs += counts.get("reg", 0)
        self.deposits += sum(counts.get(token, 0) for token in REVENUE_GOALS)
        self.conversions += sum(n for token, n in counts.items() if token != LEAD)
        self.revenue += row.revenue

    def cells(self):
        return [
            values.count_text(self.leads),
            values.count_text(self.regs),
            values.count_text(self.deposits),
            values.count_text(self.conversions),
            values.money_number(self.revenue),
        ]


@dataclass
class SpotLine:
    spot_id: int
    name: str
    link: str
    today: DayFigures = field(default_factory=DayFigures)
    yesterday: DayFigures = field(default_factory=DayFigures)


def own_spot_ids(user):
    """The spots whose postbacks `user` watches: None for all; a manager's own."""
    if sees_all(user):
        return None
    return set(Spot.objects.filter(managers=user).values_list("pk", flat=True))


def figures(user, today):
    """(per spot lines, total line) for today and yesterday, from the rollup."""
    yesterday = today - datetime.timedelta(days=1)
    query = report.Query(
        yesterday, today, group=["spot", "day"], manager=own_figures(user), sort="spot"
    )
    rep = report.build(query)
    names = dict(Spot.objects.values_list("pk", "name"))
    lines, total = {}, SpotLine(0, "All spots", "")
    for row in rep.lines:
        if row.subtotal:
            continue
        spot_id, day = row.keys
        line = lines.get(spot_id)
        if line is None:
            link = stats_link(spot=spot_id, group="campaign", date_from=today, date_to=today)
            line = lines[spot_id] = SpotLine(spot_id, names.get(spot_id, "?"), link)
        for target in (line, total):
            (target.today if day == today else target.yesterday).add(row)
    ordered = sorted(lines.values(), key=lambda s: (-s.today.revenue, -s.today.leads, s.name))
    return ordered, total


def stats_link(**query):
    return reverse("admin:crm_dailystat_changelist") + "?" + urlencode(query)


def trend_charts(user, today):
    """Two SVG charts of the last CHART_DAYS days: leads and conversions, and revenue."""
    start = today - datetime.timedelta(days=CHART_DAYS - 1)
    rep = report.build(report.Query(start, today, group=["day"], manager=own_figures(user)))
    index = {day: i for i, day in enumerate(rep.days)}
    leads, conversions = [0] * len(rep.days), [0] * len(rep.days)
    revenue = [Decimal(0)] * len(rep.days)
    for row in rep.rows:
        at = index[row.keys[0]]
        leads[at] = row.leads
        conversions[at] = sum(n for token, n in row.counts.items() if token != LEAD)
        revenue[at] = row.revenue
    currency = settings.REPORTING_CURRENCY
    return [
        charts.line_chart(
            rep.days,
            [("Leads", leads), ("Conversions", conversions)],
            chart_id="dash-chart-counts",
            label="Leads and conversions per day",
            width=600,
        ),
        charts.line_chart(
            rep.days,
            [(f"Revenue ({currency})", revenue)],
            chart_id="dash-chart-revenue",
            label="Revenue per day",
            axis=values.money_axis,
            width=600,
        ),
    ]


def failing_lines(spot_ids):
    """The failing targets, each with a link to its deliveries that need a look."""
    targets = failing.failing_targets(spot_ids)
    lines = []
    for target in targets[:FAILING_SHOWN]:
        # The list filters by spot, postback and state (a pixel's rows: by spot).
        status = failing.RETRYING if target.retrying else Delivery.FAILED
        query = {"spot__id__exact": target.spot_id, "status": status}
        if target.kind == "postback":
            query["postback__id__exact"] = target.target_id
        reason = target.last_error or (
            f"HTTP {target.last_http_status}" if target.last_http_status else ""
        )
        lines.append(
            {
                "target": target,
                "reason": reason,
                "link": reverse("admin:postbacks_delivery_changelist") + "?" + urlencode(query),
            }
        )
    return lines, len(targets)


def age_text(age):
    """'3 min', '2 h 5 min', '4 days': how long the oldest delivery has waited."""
    if age is None:
        return ""
    minutes = int(age.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{minutes // (24 * 60)} days"


def unmatched_waiting(spot_ids):
    rows = IncomingPostback.objects.filter(status=IncomingPostback.UNMATCHED)
    if spot_ids is not None:
        rows = rows.filter(spot_id__in=spot_ids)
    return rows.count()


def getting_started(user):
    """The four steps to a first conversion, each a link, ticked when done; None
    when all are done or the user cannot set spots up."""
    if not user.has_perm("tracker.add_spot"):
        return None
    first = Spot.objects.order_by("pk").first()
    spot_page = reverse("admin:tracker_spot_change", args=[first.pk]) if first else ""
    postback = OutgoingPostback.objects.order_by("pk").first()
    test_page = (
        reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
        if postback
        else reverse("admin:postbacks_outgoingpostback_add")
    )
    add_spot = reverse("admin:tracker_spot_add")
    steps = [
        (
            "Create a spot (your bot or landing)",
            add_spot if first is None else spot_page,
            first is not None,
        ),
        (
            "Copy its incoming postback URL into your affiliate network",
            f"{spot_page}#fieldset-0-1-heading" if first else add_spot,
            IncomingPostback.objects.exists(),
        ),
        (
            "Add a pixel or an outgoing postback",
            f"{spot_page}#pixels-group" if first else add_spot,
            Pixel.objects.exists() or OutgoingPostback.objects.exists(),
        ),
        (
            "Send a test postback and see it arrive",
            test_page,
            DeliveryAttempt.objects.filter(test=True).exists()
            or Delivery.objects.filter(status=Delivery.SUCCESS).exists(),
        ),
    ]
    if all(done for _, _, done in steps):
        return None
    return [{"title": t, "link": link, "done": done} for t, link, done in steps]


def context(request):
    """What the home page shows `request.user`; tracker/site.py renders it."""
    user = request.user
    today = timezone.localdate()
    spots, total = figures(user, today)
    spot_ids = own_spot_ids(user)
    failing_now, failing_count = failing_lines(spot_ids)
    backlog = failing.backlog(spot_ids)
    queued, waited = batches.backlog()
    return {
        "dash": {
            "today": today,
            "yesterday": today - datetime.timedelta(days=1),
            "currency": settings.REPORTING_CURRENCY,
            "spots": spots,
            "total": total,
            "stats_today": stats_link(group="spot", date_from=today, date_to=today),
            "charts": trend_charts(user, today),
            "failing": failing_now,
            "failing_count": failing_count,
            "failing_more": max(failing_count - len(failing_now), 0),
            "deliveries": reverse("admin:postbacks_delivery_changelist"),
            "backlog": backlog,
            "backlog_age": age_text(backlog.oldest_age),
            "backlog_late": bool(
                backlog.oldest_age
                and backlog.oldest_age.total_seconds() > settings.POSTBACKS_HEALTH_MAX_LAG
            ),
            "queued": queued,
            "queued_age": age_text(datetime.timedelta(seconds=waited)) if queued else "",
            "queued_late": waited > settings.INCOMING_BACKLOG_MAX_AGE,
            "unmatched": unmatched_waiting(spot_ids) if sees_all(user) else None,
            "unmatched_link": reverse("admin:postbacks_incomingpostback_changelist")
            + "?status__exact=unmatched",
            "steps": getting_started(user),
        }
    }

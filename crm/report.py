"""The statistics report: rows per day × spot × dimension, read from the rollup only.

Two grouped queries on crm.DailyStat (leads by click day, goals by the chosen
basis) make every page, whatever the number of conversions behind it.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Sum

from crm.models import DailyStat
from tracker.models import Goal, Spot

DIMENSIONS = {"campaign": "Campaign", "geo": "Geo", "manager": "Manager"}
DIM_COLUMN = {"campaign": "campaign", "geo": "geo", "manager": "manager_pk"}
MAX_DAYS = 366


@dataclass
class Column:
    token: str
    name: str
    show_count: bool
    show_sum: bool


@dataclass
class Row:
    day: datetime.date
    spot: str
    dim: str
    leads: int = 0
    counts: dict = field(default_factory=lambda: defaultdict(int))
    sums: dict = field(default_factory=lambda: defaultdict(Decimal))

    @property
    def revenue(self):
        return sum(self.sums.values(), Decimal("0"))

    @property
    def reg_rate(self):
        return rate(self.counts.get("reg", 0), self.leads)

    @property
    def dep_rate(self):
        return rate(self.counts.get("dep", 0), self.counts.get("reg", 0))


def rate(part, whole):
    return None if not whole else Decimal(part * 100) / whole


def fmt_rate(value):
    return "" if value is None else f"{value:.1f}%"


@dataclass
class Report:
    columns: list
    rows: list
    total: Row
    days: list
    dimension: str


def build(date_from, date_to, basis, dimension, spot=None):
    spots = Spot.objects.all() if spot is None else Spot.objects.filter(pk=spot.pk)
    spot_names = dict(spots.values_list("pk", "name"))
    goals = {g.pk: g for g in Goal.objects.filter(spot__in=spot_names).order_by("order", "pk")}
    dim = DIM_COLUMN[dimension]
    base = DailyStat.objects.filter(day__gte=date_from, day__lte=date_to, spot__in=spot_names)
    leads = (
        base.filter(basis=DailyStat.CLICK, goal_pk=0)
        .values("day", "spot_id", dim)
        .annotate(n=Sum("count"))
        .order_by()
    )
    events = (
        base.filter(basis=basis, goal_pk__gt=0)
        .values("day", "spot_id", dim, "goal_pk")
        .annotate(n=Sum("count"), s=Sum("amount"))
        .order_by()
    )
    labels = dim_labels(dimension)
    rows = {}

    def row_for(r):
        key = (r["day"], r["spot_id"], r[dim])
        if key not in rows:
            rows[key] = Row(r["day"], spot_names.get(r["spot_id"], "?"), labels(r[dim]))
        return rows[key]

    for r in leads:
        row_for(r).leads += r["n"] or 0
    for r in events:
        goal = goals.get(r["goal_pk"])
        if goal is None:
            continue
        row = row_for(r)
        row.counts[goal.token] += r["n"] or 0
        row.sums[goal.token] += r["s"] or 0
    ordered = sorted(rows.values(), key=lambda x: (-x.day.toordinal(), x.spot, x.dim))
    total = Row(None, "Total", "")
    for row in ordered:
        total.leads += row.leads
        for token, n in row.counts.items():
            total.counts[token] += n
        for token, s in row.sums.items():
            total.sums[token] += s
    return Report(
        columns=goal_columns(goals.values()),
        rows=ordered,
        total=total,
        days=[date_from + datetime.timedelta(d) for d in range((date_to - date_from).days + 1)],
        dimension=dimension,
    )


def goal_columns(goals):
    """One column group per goal token shown in statistics, in the goals' order."""
    columns = {}
    for g in goals:
        if not (g.show_count or g.show_sum):
            continue
        col = columns.setdefault(g.token, Column(g.token, g.name, False, False))
        col.show_count |= g.show_count
        col.show_sum |= g.show_sum
    return list(columns.values())


def dim_labels(dimension):
    if dimension != "manager":
        return lambda value: value or "(none)"
    names = {u.pk: u.get_username() for u in get_user_model().objects.all()}
    return lambda pk: names.get(pk, "(none)") if pk else "(none)"


def header(report):
    cols = ["Day", "Spot", DIMENSIONS[report.dimension], "Leads"]
    for c in report.columns:
        if c.show_count:
            cols.append(f"{c.name} count")
        if c.show_sum:
            cols.append(f"{c.name} sum")
    return [*cols, "Reg per lead", "Dep per reg", "Revenue"]


def cells(report, row):
    values = [row.day.isoformat() if row.day else "", row.spot, row.dim, str(row.leads)]
    for c in report.columns:
        if c.show_count:
            values.append(str(row.counts.get(c.token, 0)))
        if c.show_sum:
            values.append(f"{row.sums.get(c.token, Decimal(0)):.2f}")
    return [*values, fmt_rate(row.reg_rate), fmt_rate(row.dep_rate), f"{row.revenue:.2f}"]


def series(report):
    """Per day totals for the chart: [(label, [values per day])]."""
    index = {day: i for i, day in enumerate(report.days)}
    leads = [0] * len(report.days)
    per_goal = {c.token: [0] * len(report.days) for c in report.columns if c.show_count}
    for row in report.rows:
        i = index.get(row.day)
        if i is None:
            continue
        leads[i] += row.leads
        for token, values in per_goal.items():
            values[i] += row.counts.get(token, 0)
    names = {c.token: c.name for c in report.columns}
    return [("Leads", leads), *((names[t], v) for t, v in per_goal.items())]

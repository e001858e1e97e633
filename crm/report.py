"""The statistics report: rows per day × spot × dimension, read from the rollup only.

Two grouped queries on crm.DailyStat (leads by click day, goals by the chosen
basis) make every page, whatever the number of conversions behind it.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Q, Sum

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


def build(date_from, date_to, basis, dimension, spot=None, manager=None):
    """The report of the page; one grouped query, pivoted per goal token in SQL.

    `manager`: a user id to count only the clients of that manager (what a
    manager may see, crm/visibility.py); None for everyone's.
    """
    spots = Spot.objects.all() if spot is None else Spot.objects.filter(pk=spot.pk)
    spot_names = dict(spots.values_list("pk", "name"))
    goals = list(Goal.objects.filter(spot__in=spot_names).order_by("order", "pk"))
    by_token = defaultdict(list)
    for g in goals:
        by_token[g.token].append(g.pk)
    dim = DIM_COLUMN[dimension]
    # Leads are counted on their click day whatever the basis; goals on the basis chosen.
    wanted = Q(basis=DailyStat.CLICK, goal_pk=0) | Q(basis=basis, goal_pk__gt=0)
    aggregates = {"leads": Sum("count", filter=Q(goal_pk=0))}
    for k, pks in enumerate(by_token.values()):
        in_goal = Q(basis=basis, goal_pk__in=pks)
        aggregates[f"n{k}"] = Sum("count", filter=in_goal)
        aggregates[f"s{k}"] = Sum("amount", filter=in_goal)
    grouped = (
        DailyStat.objects.filter(wanted, day__gte=date_from, day__lte=date_to)
        .filter(spot__in=spot_names)
        .filter(Q() if manager is None else Q(manager_pk=manager))
        .values("day", "spot_id", dim)
        .annotate(**aggregates)
        .values_list("day", "spot_id", dim, *aggregates)
        .order_by()
    )
    labels = dim_labels(dimension)
    tokens = list(by_token)
    total = Row(None, "Total", "")
    rows = []
    for day, spot_id, value, leads, *numbers in grouped:
        row = Row(day, spot_names.get(spot_id, "?"), labels(value), leads or 0)
        for k, token in enumerate(tokens):
            n, amount = numbers[2 * k], numbers[2 * k + 1]
            if n:
                row.counts[token] = n
                row.sums[token] = amount or Decimal(0)
                total.counts[token] += n
                total.sums[token] += amount or Decimal(0)
        total.leads += row.leads
        rows.append(row)
    rows.sort(key=lambda x: (-x.day.toordinal(), x.spot, x.dim))
    return Report(
        columns=goal_columns(goals),
        rows=rows,
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

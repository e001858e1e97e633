"""The statistics report: rows grouped by one or two dimensions, read from the rollup only.

One grouped query on crm.DailyStat makes every page: leads and cost by click
day (cost sits on the leads rows), goals by the chosen basis, pivoted per goal
token in SQL. It reads the coarsest grain that keeps the dimensions asked for
(crm.stats.GRAINS), so a report by campaign over 90 days reads rows per
campaign and day, whatever the number of conversions or spend rows behind them.

A click makes a client here (crm.clicks), so clicks and leads are one count:
the report has one column, Leads, and EPC and CR are per lead.
"""

import datetime
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q, Sum
from django.utils import timezone

from crm import stats, values
from crm.models import DailyStat
from tracker.models import Goal, Partner, Spot

DIMENSIONS = {
    "day": "Day",
    "spot": "Spot",
    "campaign": "Campaign",
    "adset": "Ad set",
    "ad": "Ad",
    "geo": "Geo",
    "manager": "Manager",
    "partner": "Partner",
}
COLUMN = {"day": "day", "spot": "spot_id", **stats.DIM_COLUMNS}
# Dimensions a report may be filtered on (a drill-down); day and spot have their own fields.
FILTERS = list(stats.DIMS)
MAX_DAYS = 366
ZERO = Decimal("0")
CENT = Decimal("0.01")
RATES = [  # (id, title, part, whole): conversion rates between goals (CR is per lead)
    ("dep_rate", "Dep per reg", "dep", "reg"),
    ("redep_rate", "Redep per dep", "redep", "dep"),
]


@dataclass
class Query:
    date_from: datetime.date
    date_to: datetime.date
    basis: str = DailyStat.CONVERSION
    group: list = field(default_factory=lambda: ["campaign"])
    spot: Spot | None = None
    filters: dict = field(default_factory=dict)  # {dimension: stored value}
    manager: int | None = None  # a manager's own figures (crm/visibility.py); None: all
    sort: str = ""  # a column id; "" for the grouping's natural order
    desc: bool = True
    columns: list | None = None  # the column ids to show, in any order; None: all

    @property
    def days(self):
        return (self.date_to - self.date_from).days + 1

    def previous(self):
        """The same report over the period of the same length just before this one."""
        length = datetime.timedelta(days=self.days)
        return replace(self, date_from=self.date_from - length, date_to=self.date_to - length)


@dataclass
class Column:
    # "leads", "n:<goal token>" (count), "s:<token>" (sum), "cr:<token>" (per lead),
    # "cpa:<token>" (cost per conversion), a rate, "revenue", "cost", "profit", "roi", "epc"
    id: str
    title: str


@dataclass
class Row:
    keys: tuple  # stored values of the grouped dimensions
    labels: tuple
    leads: int = 0
    counts: dict = field(default_factory=lambda: defaultdict(int))
    sums: dict = field(default_factory=lambda: defaultdict(Decimal))
    revenue: Decimal = ZERO
    unrated: int = 0
    cost: Decimal = ZERO
    cost_unrated: int = 0
    subtotal: bool = False  # the total of a first-level group
    children: list = field(default_factory=list)

    def add(self, other):
        self.leads += other.leads
        self.revenue += other.revenue
        self.unrated += other.unrated
        self.cost += other.cost
        self.cost_unrated += other.cost_unrated
        for token, n in other.counts.items():
            self.counts[token] += n
        for token, s in other.sums.items():
            self.sums[token] += s

    def value(self, column_id):
        """The number a column shows for this row (None when it has none)."""
        if column_id == "leads":
            return self.leads
        if column_id == "revenue":
            return self.revenue
        if column_id == "cost":
            return self.cost
        if column_id == "profit":
            return self.revenue - self.cost
        if column_id == "roi":
            return rate(self.revenue - self.cost, self.cost)
        if column_id == "epc":
            return per(self.revenue, self.leads)
        kind, _, token = column_id.partition(":")
        if kind == "n":
            return self.counts.get(token, 0)
        if kind == "s":
            return self.sums.get(token, ZERO)
        if kind == "cr":
            return rate(self.counts.get(token, 0), self.leads)
        if kind == "cpa":
            return per(self.cost, self.counts.get(token, 0))
        for rid, _, part, whole in RATES:
            if rid == column_id:
                return rate(self.counts.get(part, 0), self.counts.get(whole, 0))
        return None


def rate(part, whole):
    return None if not whole else Decimal(part * 100) / whole


def per(amount, n):
    """An average amount: to the cent from one unit up, else to 8 places (crypto)."""
    if not n:
        return None
    average = amount / n
    return average.quantize(CENT if abs(average) >= 1 else values.QUANTUM)


@dataclass
class Report:
    query: Query
    columns: list  # the columns shown (the user's choice)
    rows: list  # first-level rows; with two dimensions each has its children
    total: Row
    days: list
    all_columns: list = field(default_factory=list)  # every column the report has
    daily: list = field(default_factory=list)  # (revenue, cost) per day of `days`

    @property
    def lines(self):
        """Every table line in order: a group's total, then its rows."""
        for row in self.rows:
            yield row
            yield from row.children

    @property
    def with_cost(self):
        return self.query.manager is None


def build(query, daily=False):
    """The report of `query`; `daily` adds revenue and cost per day (the page's chart)."""
    spots = Spot.objects.all() if query.spot is None else Spot.objects.filter(pk=query.spot.pk)
    spot_names = dict(spots.values_list("pk", "name"))
    goals = list(Goal.objects.filter(spot__in=spot_names).order_by("order", "pk"))
    by_token = defaultdict(list)
    for g in goals:
        by_token[g.token].append(g.pk)
    revenue_pks = [g.pk for g in goals if g.revenue]
    tokens = list(by_token)
    label = labeller(query.group, spot_names)
    width = len(query.group)
    found = []
    for values_ in grouped(query, query.group, revenue_pks, list(by_token.values())):
        keys = values_[:width]
        row = Row(keys, tuple(label(d, v) for d, v in zip(query.group, keys, strict=True)))
        fill(row, values_[width:], tokens)
        # Rows a move emptied stay in the rollup; a day's cost alone makes a line.
        if row.leads or row.counts or row.unrated or row.cost or row.cost_unrated:
            found.append(row)
    total = Row((), ("Total",))
    for row in found:
        total.add(row)
    # Spend has no manager (it is bought per campaign): a manager's own figures have no cost.
    every = report_columns(goals, spot_names, with_cost=query.manager is None)
    rep = Report(
        query=query,
        columns=chosen(every, query.columns),
        rows=arrange(found, query, every),
        total=total,
        days=[query.date_from + datetime.timedelta(d) for d in range(query.days)],
        all_columns=every,
    )
    if daily:
        rep.daily = per_day(rep, revenue_pks)
    return rep


def grouped(query, group, revenue_pks, goal_pks):
    """The rollup's rows grouped by `group`: (*keys, leads, revenue, unrated, cost,
    cost_unrated, then per goal token its count and sum)."""
    basis = query.basis
    aggregates = {
        "leads": Sum("count", filter=Q(goal_pk=0)),
        "revenue": Sum("amount", filter=Q(basis=basis, goal_pk__in=revenue_pks)),
        "unrated": Sum("unrated", filter=Q(basis=basis, goal_pk__gt=0)),
        # Cost is kept on the leads rows of both bases: read it where the leads are.
        "cost": Sum("cost", filter=Q(goal_pk=0)),
        "cost_unrated": Sum("cost_unrated", filter=Q(goal_pk=0)),
    }
    for k, pks in enumerate(goal_pks):
        aggregates[f"n{k}"] = Sum("count", filter=Q(basis=basis, goal_pk__in=pks))
        aggregates[f"s{k}"] = Sum("amount", filter=Q(basis=basis, goal_pk__in=pks))
    dims = [COLUMN[d] for d in group]
    # Leads are counted on their click day whatever the basis; goals on the basis chosen.
    wanted = Q(basis=DailyStat.CLICK, goal_pk=0) | Q(basis=basis, goal_pk__gt=0)
    return (
        DailyStat.objects.filter(wanted, grain=grain_for(replace(query, group=group)))
        .filter(day__gte=query.date_from, day__lte=query.date_to)
        # All spots: no spot condition, which would steer the planner off the key's index.
        .filter(Q() if query.spot is None else Q(spot=query.spot))
        .filter(**{COLUMN[d]: v for d, v in query.filters.items()})
        .filter(Q() if query.manager is None else Q(manager_pk=query.manager))
        .values(*dims)
        .annotate(**aggregates)
        .values_list(*dims, *aggregates)
        .order_by()
    )


def fill(row, numbers, tokens):
    leads, revenue, unrated, cost, cost_unrated, *per_goal = numbers
    row.leads, row.revenue, row.unrated = leads or 0, revenue or ZERO, unrated or 0
    row.cost, row.cost_unrated = cost or ZERO, cost_unrated or 0
    for k, token in enumerate(tokens):
        n, amount = per_goal[2 * k], per_goal[2 * k + 1]
        if n:
            row.counts[token], row.sums[token] = n, amount or ZERO


def per_day(rep, revenue_pks):
    """[(revenue, cost)] per day: from the rows when grouped by day alone, else
    one more query at the coarsest grain the filters allow (days × spots rows)."""
    index = {day: i for i, day in enumerate(rep.days)}
    out = [(ZERO, ZERO)] * len(rep.days)
    if rep.query.group == ["day"]:
        pairs = ((row.keys[0], row.revenue, row.cost) for row in rep.rows)
    else:
        rows = grouped(rep.query, ["day"], revenue_pks, [])
        pairs = ((day, revenue or ZERO, cost or ZERO) for day, _, revenue, _, cost, _ in rows)
    for day, revenue, cost in pairs:
        if day in index:
            out[index[day]] = (revenue, cost)
    return out


def chosen(columns, wanted):
    """The columns `wanted` (ids) in the report's order; all when none of them exists."""
    if not wanted:
        return columns
    wanted = set(wanted)
    picked = [c for c in columns if c.id in wanted]
    return picked or columns


def grain_for(query):
    """The coarsest rollup grain that keeps every dimension the query needs."""
    needed = {d for d in [*query.group, *query.filters] if d in stats.DIMS}
    if query.manager is not None:
        needed.add("manager")
    return next(g for g, kept in stats.GRAINS.items() if needed <= set(kept))


def arrange(rows, query, columns):
    """Sort the rows; with two dimensions, nest them under a total per first value."""
    key = sort_key(query, columns)
    if len(query.group) == 1:
        return sorted(rows, key=key, reverse=query.desc)
    groups = {}
    for row in rows:
        head = groups.get(row.keys[0])
        if head is None:
            head = groups[row.keys[0]] = Row(row.keys[:1], (row.labels[0], "Total"), subtotal=True)
        head.add(row)
        head.children.append(row)
    by_first = (query.sort or default_sort(query)) == query.group[0]
    for head in groups.values():
        if by_first:  # one value of the first dimension: its lines in the second's order
            head.children.sort(key=lambda row: row.labels[1])
        else:
            head.children.sort(key=key, reverse=query.desc)
    return sorted(groups.values(), key=key, reverse=query.desc)


def sort_key(query, columns):
    """A key sorting by the chosen column: a dimension by its label, a number by its value."""
    by = query.sort
    if by not in query.group and by not in {c.id for c in columns}:
        by = default_sort(query)
    if by in query.group:
        i = query.group.index(by)  # days are labelled in ISO form: they sort as dates
        return lambda row: row.labels[i]
    return lambda row: (row.value(by) is not None, row.value(by) or 0)


def default_sort(query):
    # By day, newest first; any other grouping by revenue, the media buyer's first question.
    return "day" if query.group[0] == "day" else "revenue"


def report_columns(goals, spot_names=None, with_cost=True):
    """The numeric columns: leads, per goal its count and sum, revenue, cost,
    profit, ROI, EPC, per goal its CR and CPA, rates between goals.

    Goals of one token are one column across spots (reg is reg everywhere).
    Where two tokens' goals bear the same name (a "Deposit" goal on two spots
    under different tokens), each column names its spots, or the page would
    show two identical titles over different numbers."""
    currency = settings.REPORTING_CURRENCY
    shown = {}
    spots_of = defaultdict(list)
    for g in goals:
        if g.show_count or g.show_sum:
            count, total, name = shown.get(g.token, (False, False, g.name))
            shown[g.token] = (count or g.show_count, total or g.show_sum, name)
            if g.spot_id not in spots_of[g.token]:
                spots_of[g.token].append(g.spot_id)
    names = defaultdict(int)
    for _, _, name in shown.values():
        names[name.casefold()] += 1
    for token, (count, total, name) in shown.items():
        if names[name.casefold()] > 1:
            shown[token] = (count, total, f"{name} · {spot_list(spots_of[token], spot_names)}")
    counted = [(token, name) for token, (count, _, name) in shown.items() if count]
    columns = [Column("leads", "Leads")]
    for token, (count, total, name) in shown.items():
        if count:
            columns.append(Column(f"n:{token}", f"{name} count"))
        if total:
            columns.append(Column(f"s:{token}", f"{name} sum ({currency})"))
    columns.append(Column("revenue", f"Revenue ({currency})"))
    if with_cost:
        columns += [
            Column("cost", f"Cost ({currency})"),
            Column("profit", f"Profit ({currency})"),
            Column("roi", "ROI"),
        ]
    columns.append(Column("epc", f"EPC ({currency})"))
    columns += [Column(f"cr:{token}", f"{name} CR") for token, name in counted]
    tokens = set(shown)
    for rid, title, part, whole in RATES:
        if part in tokens and whole in tokens:
            columns.append(Column(rid, title))
    if with_cost:
        columns += [Column(f"cpa:{token}", f"{name} CPA ({currency})") for token, name in counted]
    return columns


def spot_list(spot_ids, spot_names, shown=2):
    """'Casino, Poker' or 'Casino, Poker +3': which spots a column's goal is on."""
    named = [(spot_names or {}).get(pk, f"spot {pk}") for pk in spot_ids]
    more = f" +{len(named) - shown}" if len(named) > shown else ""
    return ", ".join(named[:shown]) + more


def labeller(group, spot_names):
    names = {}
    if "manager" in group:
        names["manager"] = {u.pk: u.get_username() for u in get_user_model().objects.all()}
    if "partner" in group:
        names["partner"] = dict(Partner.objects.values_list("pk", "name"))

    def label(dimension, value):
        if dimension == "day":
            return value.isoformat()
        if dimension == "spot":
            return spot_names.get(value, "?")
        if dimension in names:
            return names[dimension].get(value, "(none)") if value else "(none)"
        return value or "(none)"

    return label


def header(report, for_csv=False):
    """Column titles; the CSV's rates say their unit in the title, their cells are numbers."""
    titles = [c.title + (" (%)" if for_csv and is_percent(c.id) else "") for c in report.columns]
    return [DIMENSIONS[d] for d in report.query.group] + titles


def cells(report, row, for_csv=False):
    """A table line as text: for people on the page (1,234.50 and 12.5%), as plain
    numbers in the CSV (1234.5 and 12.5), which spreadsheets read as numbers."""
    labels = list(row.labels) + [""] * (len(report.query.group) - len(row.labels))
    show = plain_number if for_csv else shown
    return labels + [show(row.value(c.id), c.id) for c in report.columns]


def plain_lines(report):
    """The CSV's lines (and the JSON report's): titles, every line, the totals."""
    yield header(report, for_csv=True)
    for row in report.lines:
        yield cells(report, row, for_csv=True)
    yield cells(report, report.total, for_csv=True)


def is_percent(column_id):
    """Rates between goals, CR and ROI: shown as percentages."""
    return column_id.endswith("_rate") or column_id == "roi" or column_id.startswith("cr:")


def shown(value, column_id):
    """A cell's value on a screen: money to the cent with thousands separators."""
    if value is None:
        return ""
    if is_percent(column_id):
        return f"{value:.1f}%"
    if isinstance(value, Decimal):
        return values.money_number(value)
    return values.count_text(value)


def plain_number(value, column_id):
    """A cell's value in the CSV: no separators, no unit, all the decimals kept."""
    if value is None:
        return ""
    if is_percent(column_id):
        return values.plain(Decimal(value).quantize(Decimal("0.01")))
    if isinstance(value, Decimal):
        return values.plain(value)
    return str(value)


def chart_metric(report):
    """The chart shows the column sorted on, else revenue; leads when sorted on a dimension."""
    column = report.query.sort or default_sort(report.query)
    return column if column in {c.id for c in report.all_columns} else "leads"


def series(report, top=5):
    """Per day values for a line chart, when the report is grouped by day.

    By day alone: leads and each goal's count. By day and another dimension:
    the chart's metric for the `top` values of the other one.
    """
    index = {day: i for i, day in enumerate(report.days)}
    group = report.query.group
    if group == ["day"]:
        # Leads and the `top` goals with the most conversions: more lines are a tangle.
        goals = [c for c in report.columns if c.id.startswith("n:")]
        goals.sort(key=lambda c: -(report.total.value(c.id) or 0))
        lines = {"Leads": "leads"}
        lines.update({c.title: c.id for c in goals[:top]})
        out = {name: [0] * len(report.days) for name in lines}
        for row in report.rows:
            for name, column in lines.items():
                out[name][index[row.keys[0]]] += row.value(column) or 0
        return list(out.items())
    metric, day_at = chart_metric(report), group.index("day")
    per_value = defaultdict(lambda: [0] * len(report.days))
    labels = {}
    for row in report.lines:
        if row.subtotal:
            continue
        other = row.keys[1 - day_at]
        labels[other] = row.labels[1 - day_at]
        per_value[other][index[row.keys[day_at]]] += row.value(metric) or 0
    best = sorted(per_value, key=lambda v: -sum(per_value[v]))[:top]
    return [(labels[v], per_value[v]) for v in best]


def bars(report, top=10):
    """(metric's title, [(label, value, text)]) of the top first-level rows, for a bar chart."""
    metric = chart_metric(report)
    ranked = sorted(report.rows, key=lambda r: -(r.value(metric) or 0))[:top]
    title = next(c.title for c in report.all_columns if c.id == metric)
    data = [(r.labels[0], r.value(metric) or 0, shown(r.value(metric), metric)) for r in ranked]
    return title, data


def tone(value, column_id):
    """'gain' or 'loss' for a profit or ROI (coloured on the page), else ''."""
    if column_id not in ("profit", "roi") or not value:
        return ""
    return "gain" if value > 0 else "loss"


def delta(now, before, column_id):
    """How a figure moved since the previous period: '+12 %' (relative), or for a
    percentage column '+1.5 pp' (points); '' when there is nothing to compare."""
    if now is None or before is None:
        return ""
    if is_percent(column_id):
        return f"{Decimal(now) - Decimal(before):+.1f} pp"
    if not before:
        return "new" if now else ""
    change = (Decimal(now) - Decimal(before)) * 100 / abs(Decimal(before))
    return f"{change:+.0f} %"


# -- date presets, in the installation's time zone -------------------------------------

PRESETS = [
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("last7", "Last 7 days"),
    ("last30", "Last 30 days"),
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
]


def local_today():
    """Today where the installation is (settings.TIME_ZONE), as the rollup's days are."""
    return timezone.localdate(timezone.now(), zoneinfo.ZoneInfo(settings.TIME_ZONE))


def preset_dates(name, today=None):
    """(date_from, date_to) of a preset; None for custom or an unknown name."""
    today = today or local_today()
    one = datetime.timedelta(days=1)
    if name == "today":
        return today, today
    if name == "yesterday":
        return today - one, today - one
    if name == "last7":
        return today - 6 * one, today
    if name == "last30":
        return today - 29 * one, today
    if name == "this_month":
        return today.replace(day=1), today
    if name == "last_month":
        end = today.replace(day=1) - one
        return end.replace(day=1), end
    return None

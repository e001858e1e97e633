"""The statistics page: the DailyStat admin's changelist, with a CSV export.

Grouped by one or two dimensions, sorted by any column (its header toggles
the order), filtered by drill-down: a row's link opens the same page filtered
to its values and grouped by day. Dates come from a preset (today, last 7
days, last month...) in the installation's time zone or are picked; the
previous period of the same length can be shown beside each figure. Each user
picks the columns they see (crm.ReportSettings), and may take a token for the
JSON report (crm/report_api.py). The CSV has exactly the page's lines.
"""

import csv
import datetime
import hashlib
import re
import secrets

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from crm import charts, report, values
from crm.models import Client, DailyStat, ReportSettings
from crm.visibility import own_figures
from tracker.models import Spot

PAGE_SIZE = 200


GROUPS = list(report.DIMENSIONS.items())


class StatsFilter(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    basis = forms.ChoiceField(
        label="Report by", choices=DailyStat.BASES, initial=DailyStat.CONVERSION
    )
    group = forms.ChoiceField(label="Rows by", choices=GROUPS, initial="campaign")
    then = forms.ChoiceField(label="then by", choices=[("", "—"), *GROUPS], required=False)
    spot = forms.ModelChoiceField(Spot.objects.all(), required=False, empty_label="All spots")
    compare = forms.BooleanField(label="Compare with the period before", required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if start > end:
                raise forms.ValidationError("'From' is after 'To'.")
            if (end - start).days >= report.MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {report.MAX_DAYS} days.")
        if data.get("then") and data.get("then") == data.get("group"):
            self.add_error("then", "Choose another dimension than the first, or none.")
        return data


def defaults():
    today = report.local_today()
    return {
        "date_from": today - datetime.timedelta(days=13),
        "date_to": today,
        "basis": DailyStat.CONVERSION,
        "group": "campaign",
        "then": "",
        "spot": None,
        "compare": False,
    }


def read_query(get, manager, columns=None):
    """(form, report.Query): what is not given takes its default (a link may name only
    ?group=geo); bad input shows the form's errors over the default report.

    `manager` keeps the figures to one manager's clients (crm/visibility.py);
    `columns` are the ids to show, unless the query names its own (?columns=a,b)."""
    given = {k: v for k, v in defaults().items() if v not in (None, False)}
    data = {**{k: str(v) for k, v in given.items()}, **get.dict()}
    dates = report.preset_dates(get.get("preset", ""))
    if dates:  # a preset decides the dates; the form shows them, to be changed as custom
        data["date_from"], data["date_to"] = (d.isoformat() for d in dates)
    form = StatsFilter(data)
    f = form.cleaned_data if form.is_valid() else defaults()
    sort = get.get("sort", "")
    query = report.Query(
        f["date_from"],
        f["date_to"],
        f["basis"],
        [f["group"], *([f["then"]] if f["then"] else [])],
        f["spot"],
        filters=read_filters(get),
        manager=manager,
        sort=sort.lstrip("-"),
        desc=not sort or sort.startswith("-"),
        columns=asked_columns(get) or columns or None,
    )
    return form, query


def asked_columns(get):
    """?columns=leads,revenue: the column ids a link or the JSON report names."""
    return [c.strip() for c in get.get("columns", "").split(",") if c.strip()][:200]


def saved_columns(user):
    """The columns `user` chose on the page; [] for every column."""
    found = ReportSettings.objects.filter(user_id=user.pk).values_list("columns", flat=True)
    kept = found.first()
    return kept if isinstance(kept, list) else []


def page_query(request):
    # A manager's statistics count only their own clients, like their client list.
    return read_query(request.GET, own_figures(request.user), saved_columns(request.user))


def read_filters(get):
    """A drill-down's filters: ?campaign=c1&geo=DE; manager and partner by id."""
    found = {}
    for name in report.FILTERS:
        if name not in get:
            continue
        value = get[name][:200]
        if report.COLUMN[name].endswith("_pk"):
            if not value.isdigit() or len(value) > 18:
                continue  # not an id: no such row can match, show the unfiltered report
            value = int(value)
        found[name] = value
    return found


def link(get, **changes):
    """The query string of this page with `changes` (None removes a parameter)."""
    query = get.copy()
    query.pop("p", None)
    for name, value in changes.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    return query.urlencode()


def drill(get, rep, row):
    """Where a row leads: its values as filters, by day; a day to its campaigns."""
    group = rep.query.group
    changes = {"then": None, "p": None}
    for dimension, value in zip(group, row.keys, strict=False):
        if dimension == "day":
            changes.update(date_from=value.isoformat(), date_to=value.isoformat())
        elif dimension == "spot":
            changes["spot"] = str(value)
        else:
            changes[dimension] = str(value)
    by_day_already = "day" in group[: len(row.keys)]
    if by_day_already:
        changes["preset"] = None  # the day's own dates, not the preset's
    changes["group"] = "campaign" if by_day_already else "day"
    changes["sort"] = None
    return link(get, **changes)


def table(get, rep, lines, before=None):
    """The header cells with their sort links, and the lines with their drill-down
    links; `before` (the previous period's lines by key) adds each figure's change."""
    current = get.get("sort", "")
    ids = [*rep.query.group, *(c.id for c in rep.columns)]
    head = []
    for title, column in zip(report.header(rep), ids, strict=True):
        toggled = column if current == f"-{column}" else f"-{column}"
        arrow = {f"-{column}": " ▼", column: " ▲"}.get(current, "")
        head.append(
            {
                "title": title + arrow,
                "link": link(get, sort=toggled),
                "num": column not in rep.query.group,
            }
        )
    # The link sits on a line's own last value: a group's name on its total,
    # the second value on the lines under it (the first is the group's, greyed).
    body = [
        {
            **line(rep, row, before),
            "link": drill(get, rep, row),
            "subtotal": row.subtotal,
            "linked": len(row.keys) - 1,
        }
        for row in lines
    ]
    return head, body


def line(rep, row, before=None):
    """A line's texts, its profit and ROI tones, and (comparing) each figure's change."""
    old = None if before is None else before.get(row.keys, report.Row(row.keys, ()))
    return {
        "cells": report.cells(rep, row),
        "tones": [report.tone(row.value(c.id), c.id) for c in rep.columns],
        "deltas": [
            "" if old is None else report.delta(row.value(c.id), old.value(c.id), c.id)
            for c in rep.columns
        ],
    }


def previous_lines(rep, previous):
    """{keys: line} of the previous period, its days moved onto this period's."""
    shift = datetime.timedelta(days=rep.query.days)
    group = rep.query.group

    def moved(keys):
        return tuple(k + shift if d == "day" else k for d, k in zip(group, keys, strict=False))

    found = {moved(row.keys): row for row in previous.lines}
    found[()] = previous.total
    return found


def number_cell(text, tone, change):
    tone = f" {tone}" if tone else ""
    if change:
        return format_html(
            '<td class="num{}">{}<br><small class="delta">{}</small></td>', tone, text, change
        )
    return format_html('<td class="num{}">{}</td>', tone, text)


def table_html(rows, dims):
    """The table's lines as HTML, built here: a template loop over thousands of
    cells costs more than the report's query."""

    def cell(k, text, row):
        if k >= dims:
            return number_cell(text, row["tones"][k - dims], row["deltas"][k - dims])
        if k == row["linked"]:
            return format_html(
                '<td class="nowrap"><a class="drill" href="?{}" title="Drill down">{}</a></td>',
                row["link"],
                text,
            )
        return format_html('<td class="nowrap muted">{}</td>', text)

    return format_html_join(
        "\n",
        "<tr{}>{}</tr>",
        (
            (
                mark_safe(' class="subtotal"') if row["subtotal"] else "",
                mark_safe("".join(cell(k, c, row) for k, c in enumerate(row["cells"]))),
            )
            for row in rows
        ),
    )


def total_html(total, dims):
    """The totals line: labels, then its figures with their tones and changes."""
    cells = [
        format_html("<td><strong>{}</strong></td>", text) for text in total["cells"][:dims]
    ] + [
        number_cell(format_html("<strong>{}</strong>", text), tone, change)
        for text, tone, change in zip(
            total["cells"][dims:], total["tones"], total["deltas"], strict=True
        )
    ]
    return mark_safe("".join(cells))


def chart(rep):
    if "day" in rep.query.group:
        return charts.line_chart(rep.days, report.series(rep))
    title, bars = report.bars(rep)
    return charts.bar_chart(f"{title} by {report.DIMENSIONS[rep.query.group[0]]}", bars)


def money_chart(rep):
    """Revenue against cost per day (revenue alone where the figures have no cost)."""
    currency = settings.REPORTING_CURRENCY
    series = [(f"Revenue ({currency})", [revenue for revenue, _ in rep.daily])]
    if rep.with_cost:
        series.append((f"Cost ({currency})", [cost for _, cost in rep.daily]))
    return charts.line_chart(
        rep.days,
        series,
        chart_id="stats-money-chart",
        label="Revenue and cost per day",
        axis=values.money_axis,
        width=600,  # drawn at half the page: text stays readable
        colours=charts.MONEY_COLOURS,
    )


def preset_links(get):
    """(id, title, link, chosen) of each date preset."""
    chosen = get.get("preset", "")
    return [
        (name, title, link(get, preset=name, date_from=None, date_to=None), name == chosen)
        for name, title in report.PRESETS
        if name != "custom"
    ]


def column_choices(rep):
    """(id, title, shown) of every column the report has, for the chooser."""
    shown = {c.id for c in rep.columns}
    return [(c.id, c.title, c.id in shown) for c in rep.all_columns]


def active_filters(get, query):
    """(parameter, title, value, its label, link without it) of each drill-down filter."""
    label = report.labeller(list(query.filters), {})
    return [
        (name, report.DIMENSIONS[name], value, label(name, value), link(get, **{name: None}))
        for name, value in query.filters.items()
    ]


def needs_rebuild():
    """The rollup is empty while there are clients: a migration cleared it."""
    return not DailyStat.objects.exists() and Client.objects.exists()


@admin.register(DailyStat)
class StatisticsAdmin(admin.ModelAdmin):
    def has_view_permission(self, request, obj=None):
        # The rollup is read through the report, which keeps a manager to their
        # own figures; a row's own pages would show anyone's.
        return obj is None and super().has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        def view(fn):
            return self.admin_site.admin_view(fn)

        return [
            path("csv/", view(self.csv_view), name="crm_dailystat_csv"),
            path("columns/", view(self.columns_view), name="crm_dailystat_columns"),
            path("token/", view(self.token_view), name="crm_dailystat_token"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, query = page_query(request)
        rep = report.build(query, daily=True)
        compare = form.is_valid() and form.cleaned_data["compare"]
        before = previous_lines(rep, report.build(query.previous())) if compare else None
        # A page of lines: a year by campaign and geo is thousands; the CSV has them all.
        page = Paginator(list(rep.lines), PAGE_SIZE).get_page(request.GET.get("p"))
        head, body = table(request.GET, rep, page, before)
        currency = settings.REPORTING_CURRENCY
        context = {
            **self.admin_site.each_context(request),
            "title": "Statistics",
            "opts": self.model._meta,
            "form": form,
            "head": head,
            "body": table_html(body, len(query.group)),
            "rows": body,
            "page": page,
            "page_query": link(request.GET),
            "total": report.cells(rep, rep.total),
            "total_html": total_html(line(rep, rep.total, before), len(query.group)),
            "group_count": len(query.group),
            "chart": chart(rep),
            "money_chart": money_chart(rep),
            "query": link(request.GET),
            "filters": active_filters(request.GET, query),
            "presets": preset_links(request.GET),
            "period": (query.date_from, query.date_to),
            "previous": query.previous() if compare else None,
            "columns": column_choices(rep),
            "unrated": rep.total.unrated,
            "cost_unrated": rep.total.cost_unrated if rep.with_cost else 0,
            "with_cost": rep.with_cost,
            "currency": currency,
            "needs_rebuild": needs_rebuild() if not rep.rows else False,
        }
        return TemplateResponse(request, "admin/crm/statistics.html", context)

    def csv_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403)
        _, query = page_query(request)
        rep = report.build(query)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"statistics-{query.date_from}-{query.date_to}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response)
        for cells in report.plain_lines(rep):
            writer.writerow(cells)
        return response

    def columns_view(self, request):
        """Saves the columns the user ticked (all of them, or none: every column)."""
        if request.method != "POST":
            return HttpResponse("Use POST.", status=405, headers={"Allow": "POST"})
        if not self.has_view_permission(request):
            raise PermissionDenied
        ticked = [c for c in request.POST.getlist("columns") if COLUMN_ID.fullmatch(c)][:200]
        known = {c for c in request.POST.getlist("known") if COLUMN_ID.fullmatch(c)}
        # Every column ticked is "every column": goals added later show up too.
        every = bool(known) and set(ticked) >= known
        keep = [] if "reset" in request.POST or every else ticked
        ReportSettings.objects.update_or_create(user=request.user, defaults={"columns": keep})
        messages.success(
            request, "Your columns are saved." if keep else "Every column is shown again."
        )
        back = QueryDict(request.POST.get("next", "")[:2000], mutable=True)
        back.pop("columns", None)  # the saved choice, not a link's, from now on
        return HttpResponseRedirect(
            reverse("admin:crm_dailystat_changelist") + "?" + back.urlencode()
        )

    def token_view(self, request):
        """A new token for the JSON report, shown once; the one before stops working."""
        if request.method != "POST":
            return HttpResponse("Use POST.", status=405, headers={"Allow": "POST"})
        if not self.has_view_permission(request):
            raise PermissionDenied
        token = secrets.token_urlsafe(32)
        ReportSettings.objects.update_or_create(
            user=request.user, defaults={"token_hash": token_hash(token)}
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Your report token",
            "opts": self.model._meta,
            "token": token,
            "url": request.build_absolute_uri(reverse("api-report")),
        }
        return TemplateResponse(request, "admin/crm/report_token.html", context)


# A column id: "leads", "roi", "n:dep", "cpa:first_dep"...
COLUMN_ID = re.compile(r"[a-z_]{1,20}(:[A-Za-z0-9_.-]{1,64})?")


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()

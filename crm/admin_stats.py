"""The statistics page: the DailyStat admin's changelist, with a CSV export.

Grouped by one or two dimensions, sorted by any column (its header toggles
the order), filtered by drill-down: a row's link opens the same page filtered
to its values and grouped by day. The CSV has exactly the page's lines.
"""

import csv
import datetime

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from crm import charts, report
from crm.models import Client, DailyStat
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
    today = timezone.localdate()
    return {
        "date_from": today - datetime.timedelta(days=13),
        "date_to": today,
        "basis": DailyStat.CONVERSION,
        "group": "campaign",
        "then": "",
        "spot": None,
    }


def read_query(request):
    """(form, report.Query): what is not given takes its default (a link may name only
    ?group=geo); bad input shows the form's errors over the default report."""
    get = request.GET
    given = {k: v for k, v in defaults().items() if v is not None}
    data = {**{k: str(v) for k, v in given.items()}, **get.dict()}
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
        # A manager's statistics count only their own clients, like their client list.
        manager=own_figures(request.user),
        sort=sort.lstrip("-"),
        desc=not sort or sort.startswith("-"),
    )
    return form, query


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
    changes["group"] = "campaign" if by_day_already else "day"
    changes["sort"] = None
    return link(get, **changes)


def table(get, rep, lines):
    """The header cells with their sort links, and the lines with their drill-down links."""
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
            "cells": report.cells(rep, row),
            "link": drill(get, rep, row),
            "subtotal": row.subtotal,
            "linked": len(row.keys) - 1,
        }
        for row in lines
    ]
    return head, body


def table_html(rows, dims):
    """The table's lines as HTML, built here: a template loop over thousands of
    cells costs more than the report's query."""

    def cell(k, text, row):
        if k >= dims:
            return format_html('<td class="num">{}</td>', text)
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


def chart(rep):
    if "day" in rep.query.group:
        return charts.line_chart(rep.days, report.series(rep))
    title, bars = report.bars(rep)
    return charts.bar_chart(f"{title} by {report.DIMENSIONS[rep.query.group[0]]}", bars)


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
        csv_view = self.admin_site.admin_view(self.csv_view)
        return [path("csv/", csv_view, name="crm_dailystat_csv"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, query = read_query(request)
        rep = report.build(query)
        # A page of lines: a year by campaign and geo is thousands; the CSV has them all.
        page = Paginator(list(rep.lines), PAGE_SIZE).get_page(request.GET.get("p"))
        head, body = table(request.GET, rep, page)
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
            "group_count": len(query.group),
            "chart": chart(rep),
            "query": link(request.GET),
            "filters": active_filters(request.GET, query),
            "unrated": rep.total.unrated,
            "currency": settings.REPORTING_CURRENCY,
            "needs_rebuild": needs_rebuild() if not rep.rows else False,
        }
        return TemplateResponse(request, "admin/crm/statistics.html", context)

    def csv_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403)
        _, query = read_query(request)
        rep = report.build(query)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"statistics-{query.date_from}-{query.date_to}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response)
        writer.writerow(report.header(rep, for_csv=True))
        for row in rep.lines:
            writer.writerow(report.cells(rep, row, for_csv=True))
        writer.writerow(report.cells(rep, rep.total, for_csv=True))
        return response

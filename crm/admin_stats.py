"""The statistics page: the DailyStat admin's changelist, with a CSV export."""

import csv
import datetime

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from crm import charts, report
from crm.models import DailyStat
from crm.visibility import own_figures
from tracker.models import Spot

PAGE_SIZE = 200


class StatsFilter(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    basis = forms.ChoiceField(
        label="Report by", choices=DailyStat.BASES, initial=DailyStat.CONVERSION
    )
    dimension = forms.ChoiceField(label="Rows by", choices=list(report.DIMENSIONS.items()))
    spot = forms.ModelChoiceField(Spot.objects.all(), required=False, empty_label="All spots")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if start > end:
                raise forms.ValidationError("'From' is after 'To'.")
            if (end - start).days >= report.MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {report.MAX_DAYS} days.")
        return data


def defaults():
    today = timezone.localdate()
    return {
        "date_from": today - datetime.timedelta(days=13),
        "date_to": today,
        "basis": DailyStat.CONVERSION,
        "dimension": "campaign",
        "spot": None,
    }


def read_filter(request):
    """(form, cleaned values): bad input shows the form's errors over the default report."""
    if not any(k in request.GET for k in ("date_from", "date_to", "basis", "dimension")):
        initial = defaults()
        return StatsFilter(initial=initial), initial
    form = StatsFilter(request.GET)
    if form.is_valid():
        return form, form.cleaned_data
    return form, defaults()


def build_report(request, f):
    # A manager's statistics count only their own clients, like their client list.
    return report.build(
        f["date_from"],
        f["date_to"],
        f["basis"],
        f["dimension"],
        f["spot"],
        manager=own_figures(request.user),
    )


@admin.register(DailyStat)
class StatisticsAdmin(admin.ModelAdmin):
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
            return self.admin_site.login(request)
        form, f = read_filter(request)
        rep = build_report(request, f)
        # A page of rows: a year by campaign is tens of thousands; the CSV has them all.
        page = Paginator(rep.rows, PAGE_SIZE).get_page(request.GET.get("p"))
        others = request.GET.copy()
        others.pop("p", None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Statistics",
            "opts": self.model._meta,
            "form": form,
            "header": report.header(rep),
            "rows": [report.cells(rep, row) for row in page],
            "page": page,
            "page_query": others.urlencode(),
            "total": report.cells(rep, rep.total),
            "chart": charts.line_chart(rep.days, report.series(rep)),
            "query": others.urlencode(),
        }
        return TemplateResponse(request, "admin/crm/statistics.html", context)

    def csv_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403)
        _, f = read_filter(request)
        rep = build_report(request, f)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = f"statistics-{f['date_from']}-{f['date_to']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        writer = csv.writer(response)
        writer.writerow(report.header(rep))
        for row in rep.rows:
            writer.writerow(report.cells(rep, row))
        writer.writerow(report.cells(rep, rep.total))
        return response

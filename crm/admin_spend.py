"""Spend in the admin: the list of spend rows with totals, and the spend file upload.

The upload goes in three steps on one page: pick the spot, the source and
the file; check the column mapping (guessed, or remembered for the source)
against a preview of the first lines and the totals per day; import. The
file waits between the steps in a temporary folder, named by a random token
and its uploader, so the second step does not send it again.
"""

import re
import secrets
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm import spend, spend_files, values
from crm.models import Spend, SpendMapping
from tracker.models import Spot

UPLOADS = Path(tempfile.gettempdir()) / "tracker-spend-files"
# An upload left between preview and import is removed after a day.
UPLOAD_LIFETIME = 24 * 3600
TOKEN = re.compile(r"[0-9a-f]{32}")
PREVIEW_LINES = 20
FILE_PREFIX = "file:"


# -- the list ---------------------------------------------------------------------


@admin.register(Spend)
class SpendAdmin(admin.ModelAdmin):
    list_display = ["day", "spot", "source", "campaign", "adset", "ad", "geo", "money", "reported"]
    list_filter = ["spot", "source", "day", "currency"]
    date_hierarchy = "day"
    search_fields = ["campaign", "adset", "ad"]
    list_select_related = ["spot"]
    show_full_result_count = False
    readonly_fields = [f.name for f in Spend._meta.fields]

    @admin.display(description="Amount", ordering="amount")
    def money(self, obj):
        return values.money_text(obj.amount, obj.currency)

    @admin.display(description="In reporting currency", ordering="reported_amount")
    def reported(self, obj):
        if obj.reported_amount is None:
            return format_html('<span title="{}">no rate yet</span>', "Counted once a rate comes")
        return values.money_text(obj.reported_amount, values.reporting_currency())

    # Spend is written by clicks, files and the ad networks, each keeping the
    # statistics in step: no row is made or edited by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        spend.delete_rows(Spend.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        spend.delete_rows(queryset)

    def may_upload(self, request):
        return request.user.has_perm("crm.add_spend")

    def get_urls(self):
        view = self.admin_site.admin_view(self.upload_view)
        return [path("upload/", view, name="crm_spend_upload"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl")
        if cl is not None:
            response.context_data["totals"] = totals(cl.queryset)
            response.context_data["may_upload"] = self.may_upload(request)
        return response

    def upload_view(self, request):
        if not self.may_upload(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload spend file",
            "opts": self.model._meta,
            **upload_step(request),
        }
        return TemplateResponse(request, "admin/crm/spend_upload.html", context)


def totals(rows):
    """What a filtered list adds up to: in the reporting currency, and per currency."""
    found = rows.aggregate(
        reported=Sum("reported_amount"),
        unrated=Count("pk", filter=Q(reported_amount__isnull=True)),
    )
    per_currency = rows.order_by().values("currency").annotate(s=Sum("amount")).order_by("currency")
    return {
        "reported": values.money_text(found["reported"] or 0, values.reporting_currency()),
        "unrated": found["unrated"],
        "per_currency": [values.money_text(r["s"], r["currency"]) for r in per_currency],
    }


@admin.register(SpendMapping)
class SpendMappingAdmin(admin.ModelAdmin):
    list_display = ["source", "columns_shown", "updated"]
    search_fields = ["source"]
    fields = ["source", "columns"]

    @admin.display(description="Columns")
    def columns_shown(self, obj):
        columns = obj.columns if isinstance(obj.columns, dict) else {}
        return "; ".join(f"{k}: {v}" for k, v in columns.items())


# -- the upload -------------------------------------------------------------------


class UploadForm(forms.Form):
    spot = forms.ModelChoiceField(Spot.objects.order_by("name"))
    source = forms.ChoiceField(
        label="Source",
        required=False,
        help_text="The kind of file; its column mapping is remembered under this name.",
    )
    new_source = forms.CharField(
        label="or a new source",
        required=False,
        max_length=SpendMapping._meta.get_field("source").max_length,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Ads Manager", "size": 24}),
    )
    file = forms.FileField(
        required=False,
        help_text="CSV or XLSX exported from Ads Manager, TikTok Ads and the like: "
        "one line per day (and campaign, ad set, ad, country).",
    )
    token = forms.CharField(required=False, widget=forms.HiddenInput)
    currency = forms.CharField(
        label="Currency of the amounts",
        required=False,
        max_length=3,
        widget=forms.TextInput(attrs={"size": 4}),
        help_text="When the file has no currency column.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = SpendMapping.objects.order_by("source").values_list("source", flat=True)
        self.fields["source"].choices = [("", "New source…"), *((n, n) for n in names)]

    def clean_new_source(self):
        return values.clean_text(self.cleaned_data["new_source"]).strip()

    def clean_currency(self):
        text = self.cleaned_data["currency"].strip()
        try:
            return values.parse_currency(text) if text else ""
        except ValueError as e:
            raise forms.ValidationError(str(e)) from e

    def clean(self):
        data = super().clean()
        name = data.get("new_source") or data.get("source")
        if not name:
            self.add_error("new_source", "Pick a source or name a new one.")
        data["name"] = name
        if not data.get("file") and not TOKEN.fullmatch(data.get("token") or ""):
            self.add_error("file", "Choose the file.")
        if data.get("file") and data["file"].size > spend_files.MAX_BYTES:
            self.add_error("file", f"The file is over {spend_files.MAX_BYTES // 2**20} MB.")
        return data


def keep_upload(user, upload):
    """Store an uploaded file until its import -> token."""
    UPLOADS.mkdir(mode=0o700, exist_ok=True)
    now = time.time()
    for old in UPLOADS.iterdir():
        if now - old.stat().st_mtime > UPLOAD_LIFETIME:
            old.unlink(missing_ok=True)
    token = secrets.token_hex(16)
    ext = "xlsx" if spend_files.is_xlsx(upload.name, upload.read(4)) else "csv"
    upload.seek(0)
    with open(UPLOADS / f"{user.pk}-{token}.{ext}", "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return token


def upload_path(user, token):
    for ext in ("xlsx", "csv"):
        found = UPLOADS / f"{user.pk}-{token}.{ext}"
        if found.exists():
            return found
    return None


def posted_columns(post):
    return {name: post.get(f"col_{name}", "") for name in spend_files.FIELDS}


def remembered(name):
    mapping = SpendMapping.objects.filter(source=name).first()
    columns = mapping.columns if mapping and isinstance(mapping.columns, dict) else {}
    return columns


def upload_step(request):
    """The page's context for this request: the first form, a preview, or an import's result."""
    if request.method != "POST":
        return {"form": UploadForm(initial={"spot": request.GET.get("spot")}), "step": "file"}
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return {"form": form, "step": "preview" if form.data.get("token") else "file"}
    data = form.cleaned_data
    token = keep_upload(request.user, data["file"]) if data.get("file") else data["token"]
    stored = upload_path(request.user, token)
    if stored is None:
        form.add_error("file", "The uploaded file is gone (over a day old?): choose it again.")
        return {"form": form, "step": "file"}
    try:
        table = spend_files.read_table(stored.name, stored.read_bytes())
    except spend_files.BadFile as e:
        form.add_error("file", str(e))
        return {"form": form, "step": "file"}
    saved = remembered(data["name"])
    # A first look guesses the mapping; the preview's selects say it afterwards.
    if data.get("file"):
        columns = spend_files.guess(table.headers, saved)
    else:
        columns = {k: v for k, v in posted_columns(request.POST).items() if v}
    currency = (
        data.get("currency")
        or spend_files.title_currency(columns.get("amount"))
        or (saved.get("default_currency") if data.get("file") else "")
        or data["spot"].currency
    )
    problems = spend_files.check_mapping(columns, table.headers, currency)
    parsed = None if problems else spend_files.read_rows(table, columns, currency)
    context = {
        "form": form,
        "step": "preview",
        "token": token,
        "name": data["name"],
        "currency": currency,
        "headers": table.headers,
        "mapping": [
            (name, spend_files.LABELS[name], columns.get(name, ""), name in spend_files.REQUIRED)
            for name in spend_files.FIELDS
        ],
        "problems": problems,
        "parsed": parsed,
        "lines": len(table.lines),
    }
    if parsed is not None:
        context["preview"] = preview_rows(parsed)
        context["days"] = day_lines(parsed)
        if "_import" in request.POST and not parsed.bad:
            return {**context, **run_import(data, columns, currency, parsed, stored)}
    return context


def preview_rows(parsed):
    return [
        (number, row["day"], row["campaign"], row["adset"], row["ad"], row["geo"],
         values.money_text(row["amount"], row["currency"]))
        for number, row in parsed.rows[:PREVIEW_LINES]
    ]  # fmt: skip


def day_lines(parsed):
    return [
        (day, n, ", ".join(values.money_text(s, c) for c, s in sorted(sums.items())))
        for day, n, sums in parsed.per_day()
    ]


def run_import(data, columns, currency, parsed, stored):
    """Replace the file's days of its source and spot; remember the mapping."""
    by_day = defaultdict(list)
    for _, row in parsed.rows:
        by_day[row["day"]].append(row)
    source = f"{FILE_PREFIX}{data['name']}"
    written = {}
    try:
        with transaction.atomic():
            for day, rows in sorted(by_day.items()):
                kept = [r for r in rows if r["amount"]]  # a zero line adds nothing
                written[day] = spend.replace_day(source, data["spot"], day, kept)
            SpendMapping.objects.update_or_create(
                source=data["name"], defaults={"columns": {**columns, "default_currency": currency}}
            )
    except ValueError as e:
        return {"problems": [f"Nothing was imported: {e}."]}
    stored.unlink(missing_ok=True)
    return {
        "step": "done",
        "imported": [(day, written[day], text) for day, _, text in day_lines(parsed)],
        "spend_list": reverse("admin:crm_spend_changelist")
        + "?"
        + urlencode({"spot__id__exact": data["spot"].pk, "source__exact": source}),
        "reporting": settings.REPORTING_CURRENCY,
    }

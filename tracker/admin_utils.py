"""Admin helpers shared by every app's admin."""

import json

from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.paginator import Paginator
from django.db import connections
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

# Below this many rows (as the planner estimates) an exact COUNT(*) is cheap.
EXACT_COUNT_BELOW = 50_000


class EstimatedCountPaginator(Paginator):
    """A paginator that does not COUNT(*) a table of millions on every page.

    On PostgreSQL it asks the planner for its row estimate and counts exactly
    only when that estimate is small; elsewhere it counts.
    """

    @cached_property
    def count(self):
        qs = self.object_list
        connection = connections[qs.db]
        if connection.vendor == "postgresql":
            sql, params = qs.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
            if isinstance(plan, str):
                plan = json.loads(plan)
            estimate = int(plan[0]["Plan"]["Plan Rows"])
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
        return super().count


class BigTableAdmin(admin.ModelAdmin):
    """For log-sized tables: no full counts, estimated pages."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


class ReadOnlyAdmin(BigTableAdmin):
    """Logs are written by the product, never by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def copyable(value, size=90):
    """A read-only text box with a Copy button, for URLs people paste elsewhere."""
    return format_html(
        '<span class="copyable"><input type="text" readonly value="{}" size="{}" '
        'onclick="this.select()"> '
        '<button type="button" class="button copy-button" '
        'onclick="var i=this.previousElementSibling;i.select();'
        "(navigator.clipboard?navigator.clipboard.writeText(i.value):"
        "Promise.resolve(document.execCommand('copy')))"
        ".then(()=>{{this.textContent='Copied'}})\">Copy</button></span>",
        value,
        size,
    )


def log_change(request, objects, message):
    """An action or a custom view's change, in each object's History page:
    who, when and what (the change form writes its own)."""
    LogEntry.objects.log_actions(request.user.pk, list(objects), CHANGE, change_message=message)


def admin_link(obj, name):
    if obj is None:
        return "-"
    return format_html(
        '<a href="{}">{}</a>', reverse(f"admin:{name}_change", args=[obj.pk]), str(obj)
    )

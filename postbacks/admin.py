from collections import Counter

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from crm.admin import CustomFieldInline
from postbacks.incoming import REPLAYABLE, replay
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback
from tracker import admin as tracker_admin
from tracker.admin_utils import ReadOnlyAdmin, ReadOnlyInline
from tracker.models import Spot


class OutgoingPostbackInline(admin.TabularInline):
    model = OutgoingPostback
    fields = ["name", "url", "method", "enabled", "state"]
    readonly_fields = ["state"]
    extra = 0
    show_change_link = True

    @admin.display(description="State")
    def state(self, obj):
        if obj.pk and obj.disabled_reason:
            return format_html(
                '<strong style="color:#ba2121">Disabled: {}</strong>', obj.disabled_reason
            )
        return "Enabled" if obj.enabled else "Off"


@admin.register(Spot)
class SpotAdmin(tracker_admin.SpotAdmin):
    inlines = [*tracker_admin.SpotAdmin.inlines, CustomFieldInline, OutgoingPostbackInline]


@admin.register(IncomingPostback)
class IncomingPostbackAdmin(ReadOnlyAdmin):
    list_display = [
        "received",
        "status",
        "http_status",
        "spot",
        "method",
        "query_short",
        "client",
        "conversion",
    ]
    list_filter = ["status", "spot", ("received", admin.DateFieldListFilter)]
    search_fields = ["query", "body", "=client__click_id"]
    list_select_related = ["spot", "client", "conversion__goal"]
    date_hierarchy = "received"
    actions = ["replay_selected"]
    fieldsets = [
        ("Request", {"fields": ["received", "raw_request", "remote_addr", "content_type"]}),
        (
            "Outcome",
            {
                "fields": [
                    "status",
                    "http_status",
                    "processed",
                    "error",
                    "warnings",
                    "spot",
                    "client_link",
                    "conversion_link",
                    "replay_button",
                ]
            },
        ),
    ]
    readonly_fields = [
        "received",
        "raw_request",
        "remote_addr",
        "content_type",
        "status",
        "http_status",
        "processed",
        "error",
        "warnings",
        "spot",
        "client_link",
        "conversion_link",
        "replay_button",
    ]

    @admin.display(description="Query")
    def query_short(self, obj):
        return (obj.query[:80] + "…") if len(obj.query) > 80 else obj.query

    @admin.display(description="Raw request")
    def raw_request(self, obj):
        line = f"{obj.method} {obj.path}" + (f"?{obj.query}" if obj.query else "")
        return format_html(
            '<pre style="white-space:pre-wrap;word-break:break-all;margin:0">{}</pre>{}',
            line,
            format_html('<pre style="white-space:pre-wrap;word-break:break-all">{}</pre>', obj.body)
            if obj.body
            else "",
        )

    @admin.display(description="Client")
    def client_link(self, obj):
        return admin_link(obj.client, "crm_client")

    @admin.display(description="Conversion")
    def conversion_link(self, obj):
        return admin_link(obj.conversion, "crm_conversion")

    @admin.display(description="Replay")
    def replay_button(self, obj):
        if obj.status not in REPLAYABLE:
            return "Only unmatched or rejected postbacks are replayed."
        return format_html(
            '<button type="submit" class="button" formaction="{}">Replay this postback</button>',
            reverse("admin:postbacks_incomingpostback_replay", args=[obj.pk]),
        )

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/replay/",
                self.admin_site.admin_view(require_POST(self.replay_view)),
                name="postbacks_incomingpostback_replay",
            )
        ]
        return urls + super().get_urls()

    def replay_view(self, request, pk):
        row = get_object_or_404(IncomingPostback, pk=pk)
        if not self.has_replay_permission(request):
            messages.error(request, "You may not replay postbacks.")
        else:
            outcome = replay(row)
            if outcome is None:
                messages.warning(request, "This postback is not unmatched or rejected.")
            else:
                messages.success(request, f"Replayed: {outcome.status}. {outcome.error}".strip())
        return redirect("admin:postbacks_incomingpostback_change", row.pk)

    def has_replay_permission(self, request):
        # The log is read-only in the admin; replaying it needs the change right.
        return request.user.has_perm("postbacks.change_incomingpostback")

    @admin.action(
        description="Replay selected unmatched or rejected postbacks",
        permissions=["replay"],
    )
    def replay_selected(self, request, queryset):
        counts = Counter()
        # Oldest first: a first deposit is decided before the repeat that followed it.
        for row in queryset.order_by("received", "id"):
            outcome = replay(row)
            counts[outcome.status if outcome else "skipped (not unmatched, rejected or stale)"] += 1
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
        self.message_user(request, f"Replayed. {summary}")


def admin_link(obj, name):
    if obj is None:
        return "-"
    return format_html(
        '<a href="{}">{}</a>', reverse(f"admin:{name}_change", args=[obj.pk]), str(obj)
    )


class OutgoingPostbackAdmin(admin.ModelAdmin):
    list_display = ["name", "spot", "method", "enabled", "disabled_reason", "created"]
    list_filter = ["spot", "enabled", "method"]
    search_fields = ["name", "url"]
    list_select_related = ["spot"]
    filter_horizontal = ["goals"]


admin.site.register(OutgoingPostback, OutgoingPostbackAdmin)


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = [
        "number",
        "created",
        "method",
        "url",
        "response_status",
        "duration_ms",
        "error_class",
        "success",
    ]
    readonly_fields = fields
    show_change_link = False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created", "target", "status", "attempts", "next_attempt", "spot", "conversion"]
    list_filter = ["status", "spot", "postback", ("created", admin.DateFieldListFilter)]
    search_fields = ["=id", "=conversion__client__click_id"]
    list_select_related = ["spot", "postback", "pixel", "external_goal", "conversion__goal"]
    inlines = [DeliveryAttemptInline]

    @admin.display(description="Target")
    def target(self, obj):
        return obj.target_name

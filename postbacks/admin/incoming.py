"""The incoming log: every call of the endpoint as stored, its outcome and replay."""

from collections import Counter

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from crm.visibility import VisibleRowsMixin
from postbacks.incoming.process import REPLAYABLE, replay
from postbacks.models import IncomingPostback
from tracker.admin_utils import ReadOnlyAdmin, admin_link, log_change

# Text colours of the outcomes in the list: what needs a look is red or amber.
STATUS_COLOURS = {
    IncomingPostback.ACCEPTED: "#1e7e34",
    IncomingPostback.UPDATED: "#205493",
    IncomingPostback.DUPLICATE: "#666",
    IncomingPostback.UNMATCHED: "#a36d00",
    IncomingPostback.REJECTED: "#ba2121",
    IncomingPostback.RECEIVED: "#666",
    IncomingPostback.QUEUED: "#666",
}
# A cell of long text keeps to this width in the list; its full text is the tooltip.
CLIPPED = (
    "display:inline-block;max-width:{}em;overflow:hidden;text-overflow:ellipsis;"
    "white-space:nowrap;vertical-align:bottom"
)


def clipped(text, em):
    if not text:
        return "-"
    text = text[:1000]  # the row, not the page, is where all of a long query is read
    return format_html('<span style="{}" title="{}">{}</span>', CLIPPED.format(em), text, text)


@admin.register(IncomingPostback)
class IncomingPostbackAdmin(VisibleRowsMixin, ReadOnlyAdmin):
    list_display = [
        "received",
        "status_cell",
        "http_status",
        "error_short",
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
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    @admin.display(description="Status", ordering="status")
    def status_cell(self, obj):
        return format_html(
            '<span class="incoming-status status-{}" style="color:{};font-weight:bold">{}</span>',
            obj.status,
            STATUS_COLOURS.get(obj.status, "inherit"),
            obj.get_status_display(),
        )

    @admin.display(description="Reason")
    def error_short(self, obj):
        return clipped(obj.error, 18)

    @admin.display(description="Query")
    def query_short(self, obj):
        return clipped(obj.query, 22)

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
        row = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_replay_permission(request):
            messages.error(request, "Replaying postbacks is a team lead's: nothing was replayed.")
        else:
            outcome = replay(row)
            if outcome is None:
                messages.warning(request, "This postback is not unmatched or rejected.")
            else:
                log_change(request, [row], f"Replayed: {outcome.status}.")
                messages.success(request, f"Replayed: {outcome.status}. {outcome.error}".strip())
        return redirect("admin:postbacks_incomingpostback_change", row.pk)

    def has_replay_permission(self, request):
        return request.user.has_perm("postbacks.replay_incomingpostback")

    @admin.action(
        description="Replay selected unmatched or rejected postbacks",
        permissions=["replay"],
    )
    def replay_selected(self, request, queryset):
        counts = Counter()
        # Oldest first: a first deposit is decided before the repeat that followed it.
        for row in queryset.order_by("received", "id"):
            outcome = replay(row)
            if outcome:
                log_change(request, [row], f"Replayed: {outcome.status}.")
            counts[outcome.status if outcome else "skipped (not unmatched, rejected or stale)"] += 1
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))
        self.message_user(request, f"Replayed. {summary}")

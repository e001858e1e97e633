from collections import Counter

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from crm.admin import CustomFieldInline
from crm.models import Conversion
from crm.visibility import VisibleRowsMixin, visible
from postbacks import delivery
from postbacks.incoming import REPLAYABLE, replay
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback
from tracker import admin as tracker_admin
from tracker.admin_utils import ReadOnlyAdmin, ReadOnlyInline, log_change
from tracker.models import Spot


class OutgoingPostbackFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        limit = settings.POSTBACKS_MAX_PER_SPOT
        if len(kept) > limit:
            raise ValidationError(f"A spot may have at most {limit} outgoing postbacks.")


class LockedUrlForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A partner preset fixed this URL: the partner accepts no other.
        if self.instance.pk and self.instance.locked and "url" in self.fields:
            self.fields["url"].disabled = True


class OutgoingPostbackForm(LockedUrlForm):
    def clean(self):
        data = super().clean()
        spot = data.get("spot") or (self.instance.spot if self.instance.spot_id else None)
        if spot and data.get("goals"):
            foreign = [g for g in data["goals"] if g.spot_id != spot.pk]
            if foreign:
                names = ", ".join(f"{g.name} ({g.spot})" for g in foreign)
                self.add_error("goals", f"Goals of another spot never fire here: {names}.")
        return data


class OutgoingPostbackInline(admin.TabularInline):
    model = OutgoingPostback
    formset = OutgoingPostbackFormSet
    form = LockedUrlForm
    fields = ["name", "url", "method", "enabled", "state"]
    readonly_fields = ["state"]
    extra = 0
    show_change_link = True

    @admin.display(description="State")
    def state(self, obj):
        return postback_state(obj)


def postback_state(obj):
    """On, off or disabled by failures, and how many deliveries it holds."""
    if obj.enabled:
        return "Enabled"
    held = obj.deliveries.filter(status=Delivery.HELD).count() if obj.pk else 0
    holding = f" · {held} deliveries held, sent when switched on" if held else ""
    if obj.disabled_reason:
        return format_html(
            '<strong style="color:#ba2121">Disabled: {}</strong>{}', obj.disabled_reason, holding
        )
    return f"Off{holding}"


@admin.register(Spot)
class SpotAdmin(tracker_admin.SpotAdmin):
    inlines = [*tracker_admin.SpotAdmin.inlines, CustomFieldInline, OutgoingPostbackInline]


@admin.register(IncomingPostback)
class IncomingPostbackAdmin(VisibleRowsMixin, ReadOnlyAdmin):
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
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

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


def admin_link(obj, name):
    if obj is None:
        return "-"
    return format_html(
        '<a href="{}">{}</a>', reverse(f"admin:{name}_change", args=[obj.pk]), str(obj)
    )


class OutgoingPostbackAdmin(admin.ModelAdmin):
    form = OutgoingPostbackForm
    list_display = ["name", "spot", "method", "enabled", "state", "created"]
    list_filter = ["spot", "enabled", "method"]
    search_fields = ["name", "url"]
    list_select_related = ["spot"]
    filter_horizontal = ["goals"]
    readonly_fields = ["test_link", "consecutive_failures", "state"]
    fieldsets = [
        (None, {"fields": ["spot", "name", "partner", "goals", "enabled", "test_link"]}),
        (
            "Request",
            {
                "fields": [
                    "url",
                    "method",
                    "body_format",
                    "body",
                    "headers",
                    "secret_headers",
                    "timeout",
                ],
                "description": "Macros: {click_id}, {cl_id}, {action}, {sum}, {currency}, "
                "{tid}, {status}, {geo}, {user_id}, {username}, {name}, {player_id}, {manager}, "
                "{now}, {advert__campaign_id} and the other {advert__...}, {params__X}, "
                "{fields__X}; for ad networks' matching {ip}, {ua}, {fbclid}, {fbc} (built from "
                "fbclid when no cookie came), {fbp}, {ttclid}, {gclid}. Other trackers' names "
                "work too: {click} (click id), {id} (client id), {adid} (ad id).",
            },
        ),
        (
            "When to send",
            {
                "fields": [
                    ("send_approved", "send_pending", "send_rejected"),
                    "first_event_only",
                    "reengagement_window",
                    "all_users",
                ],
                "description": "A conversion is sent when it reaches a status ticked here, "
                "when made or later (a pending one approved, an approved one charged back); "
                "{status}, {previous_status} and {previous_sum} say which.",
            },
        ),
        ("Pace", {"fields": ["min_delay", "max_rps"]}),
        (
            "Responses",
            {"fields": ["success_status", "success_text", "error_status", "error_text"]},
        ),
        ("Health", {"fields": ["consecutive_failures", "state"]}),
    ]

    @admin.display(description="State")
    def state(self, obj):
        return postback_state(obj)

    @admin.display(description="Test")
    def test_link(self, obj):
        if not obj.pk:
            return "Preview and test send once the postback is saved."
        url = reverse("admin:postbacks_outgoingpostback_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Preview and test send</a>', url)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/test/",
                self.admin_site.admin_view(self.test_view),
                name="postbacks_outgoingpostback_test",
            )
        ]
        return urls + super().get_urls()

    def test_view(self, request, pk):
        postback = get_object_or_404(OutgoingPostback.objects.select_related("spot"), pk=pk)
        if not self.has_view_permission(request, postback):
            raise PermissionDenied
        own = visible(request.user, Conversion.objects.filter(spot=postback.spot), "client__")
        conversions = own.select_related("client", "goal")[:50]
        chosen = None
        conv_id = request.POST.get("conversion") or request.GET.get("conversion")
        if conv_id:
            chosen = own.filter(pk=conv_id).first()
        req, attempt, error = None, None, ""
        try:
            req = delivery.preview(postback, chosen)
        except Exception as e:  # a template the admin cannot render is shown, not raised
            error = f"Cannot build the request: {e}"
        if request.method == "POST" and req is not None:
            if not self.has_change_permission(request, postback):
                messages.error(request, "Test sends are a team lead's: nothing was sent.")
                return redirect("admin:postbacks_outgoingpostback_test", postback.pk)
            attempt = delivery.test_send(postback, chosen, user=request.user)
            log_change(request, [postback], f"Test send: {attempt}.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Preview and test send: {postback}",
            "postback": postback,
            "conversions": conversions,
            "chosen": chosen,
            "req": req,
            "attempt": attempt,
            "error": error,
            "recent_tests": postback.test_attempts.order_by("-created")[:10],
        }
        return TemplateResponse(request, "admin/postbacks/test_send.html", context)

    def get_readonly_fields(self, request, obj=None):
        # A partner preset fixed this URL: the partner accepts no other.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.locked:
            fields += ["url", "method", "body_format", "body"]
        return fields


admin.site.register(OutgoingPostback, OutgoingPostbackAdmin)


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = [
        "number",
        "created",
        "success",
        "request_sent",
        "response_got",
        "duration_ms",
        "error_class",
        "error",
    ]
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="Request")
    def request_sent(self, obj):
        text = f"{obj.method} {obj.url}\n{obj.request_headers}\n\n{obj.request_body}"
        return format_html('<pre style="white-space:pre-wrap;max-width:40em">{}</pre>', text)

    @admin.display(description="Response")
    def response_got(self, obj):
        if obj.response_status is None:
            return "(no response)"
        text = f"{obj.response_status}\n{obj.response_headers}\n\n{obj.response_body}"
        return format_html('<pre style="white-space:pre-wrap;max-width:40em">{}</pre>', text)


@admin.register(Delivery)
class DeliveryAdmin(VisibleRowsMixin, ReadOnlyAdmin):
    client_path = "conversion__client__"
    list_display = ["created", "target", "status", "attempts", "next_attempt", "spot", "conversion"]
    list_filter = ["status", "spot", "postback", ("created", admin.DateFieldListFilter)]
    search_fields = ["=id", "=conversion__client__click_id"]
    list_select_related = ["spot", "postback", "pixel", "external_goal", "conversion__goal"]
    inlines = [DeliveryAttemptInline]
    actions = ["resend_selected", "drop_held"]
    change_list_template = "admin/postbacks/delivery_change_list.html"
    date_hierarchy = "created"

    def changelist_view(self, request, extra_context=None):
        held = self.get_queryset(request).filter(status=Delivery.HELD).count()
        may_resend = self.has_resend_permission(request)
        extra_context = {**(extra_context or {}), "held": held, "may_resend": may_resend}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Target")
    def target(self, obj):
        return obj.target_name

    def has_resend_permission(self, request):
        return request.user.has_perm("postbacks.resend_delivery")

    @admin.action(
        description="Resend selected deliveries (same delivery id)", permissions=["resend"]
    )
    def resend_selected(self, request, queryset):
        ids = delivery.resend(queryset)
        log_change(request, Delivery.objects.filter(pk__in=ids), "Resent (same delivery id).")
        self.message_user(request, f"Resending {len(ids)} deliveries.")

    @admin.action(
        description="Drop selected held deliveries (never send them)", permissions=["resend"]
    )
    def drop_held(self, request, queryset):
        with transaction.atomic():
            # Locked, so what is logged as dropped is what was dropped.
            chosen = Delivery.objects.filter(status=Delivery.HELD, pk__in=queryset.values("pk"))
            held = list(chosen.select_for_update())
            Delivery.objects.filter(pk__in=[d.pk for d in held]).update(
                status=Delivery.SKIPPED, last_error=f"Held, then dropped by {request.user}."
            )
            log_change(request, held, "Dropped: held, never to be sent.")
        self.message_user(request, f"Dropped {len(held)} held deliveries.")

    def get_urls(self):
        urls = [
            path(
                "resend-failed/",
                self.admin_site.admin_view(self.resend_failed_view),
                name="postbacks_delivery_resend_failed",
            )
        ]
        return urls + super().get_urls()

    def resend_failed_view(self, request):
        if not self.has_resend_permission(request):
            messages.error(request, "Resending deliveries is a team lead's: nothing was resent.")
            return redirect("admin:postbacks_delivery_changelist")
        form = ResendFailedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            failed = self.get_queryset(request).filter(
                status=Delivery.FAILED, created__date__gte=since, created__date__lte=until
            )
            ids = delivery.resend(failed)
            log_change(request, Delivery.objects.filter(pk__in=ids), "Resent (same delivery id).")
            messages.success(request, f"Resending {len(ids)} failed deliveries.")
            return redirect("admin:postbacks_delivery_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Resend failed deliveries in a date range",
            "form": form,
        }
        return TemplateResponse(request, "admin/postbacks/resend_failed.html", context)


class ResendFailedForm(forms.Form):
    since = forms.DateField(help_text="YYYY-MM-DD")
    until = forms.DateField(help_text="YYYY-MM-DD, inclusive")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise forms.ValidationError("The end date comes before the start date.")
        return data


from postbacks import admin_client  # noqa: E402,F401  (re-registers the client card)

"""The delivery log: every event's way out, its attempts, resend and drop."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from crm.values import money_text
from crm.visibility import VisibleRowsMixin
from postbacks.delivery import attempts, failing
from postbacks.models import Delivery, DeliveryAttempt
from tracker.admin_utils import ReadOnlyAdmin, ReadOnlyInline, log_change

# The states the list shows: the stored statuses with *retrying* told apart.
STATES = {
    Delivery.PENDING: "Pending",
    failing.RETRYING: "Retrying",
    Delivery.SENDING: "Sending",
    Delivery.SUCCESS: "Delivered",
    Delivery.FAILED: "Failed",
    Delivery.SKIPPED: "Skipped",
    Delivery.HELD: "Held (postback off)",
    Delivery.SUPERSEDED: "Superseded",
}
# Text colours of the states (also the client card's); the list tints failed
# and retrying rows (delivery_change_list.html).
STATE_COLOURS = {
    Delivery.SUCCESS: "#1e7e34",
    Delivery.FAILED: "#ba2121",
    failing.RETRYING: "#a36d00",
    Delivery.SENDING: "#a36d00",
    Delivery.PENDING: "#666",
    Delivery.SKIPPED: "#666",
    Delivery.HELD: "#666",
    Delivery.SUPERSEDED: "#666",
}
# A reason longer than this is clipped in the list; its full text is the tooltip.
REASON_CHARS = 60


def reason(d):
    """Why the last attempt failed, shortest first: its HTTP code, else the error."""
    if d.last_http_status and d.last_error.startswith(f"HTTP {d.last_http_status}"):
        return d.last_error
    if d.last_http_status:
        return f"HTTP {d.last_http_status}: {d.last_error}" if d.last_error else ""
    return d.last_error


def span(seconds):
    """A wait as people say it: 45 s, 4 min, 2 h 10 min, 1 d 6 h."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{max(seconds, 1)} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def clipped(text, size=REASON_CHARS):
    return text if len(text) <= size else text[: size - 1] + "…"


def state_cell(d):
    """The state, coloured, with the last HTTP code or error under it."""
    state = failing.state(d)
    told = (failing.RETRYING, Delivery.FAILED, Delivery.SKIPPED, Delivery.SUPERSEDED)
    why = reason(d) if state in told else ""
    return format_html(
        '<span class="delivery-state state-{}" style="color:{};font-weight:bold" title="{}">'
        "{}</span>{}",
        state,
        STATE_COLOURS.get(state, "inherit"),
        why,
        STATES.get(state, d.get_status_display()),
        format_html('<br><small class="delivery-reason" title="{}">{}</small>', why, clipped(why))
        if why
        else "",
    )


class StateFilter(admin.SimpleListFilter):
    """By state: *Retrying* and *Pending* (not tried yet) apart, as the list shows them."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return list(STATES.items())

    def queryset(self, request, queryset):
        value = self.value()
        if value == failing.RETRYING:
            return queryset.filter(failing.retrying_q())
        if value == Delivery.PENDING:
            return queryset.filter(failing.waiting_q())
        if value == Delivery.SENDING:
            return queryset.filter(status=Delivery.SENDING, attempts=0)
        if value in STATES:
            return queryset.filter(status=value)
        return queryset


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
    list_display = ["made", "target", "state", "attempts_made", "next_try", "spot", "conversion"]
    list_filter = [StateFilter, "spot", "postback", ("created", admin.DateFieldListFilter)]
    search_fields = ["=id", "=conversion__client__click_id"]
    list_select_related = ["spot", "postback", "pixel", "external_goal", "conversion__goal"]
    inlines = [DeliveryAttemptInline]
    actions = ["resend_selected", "drop_held"]
    change_list_template = "admin/postbacks/delivery_change_list.html"
    date_hierarchy = "created"

    # The event's amounts as money (25.00 USD), in their places on the page,
    # not as stored (25.00000000).
    AMOUNTS = {"event_amount": "event_sum", "previous_amount": "previous_sum"}
    readonly_fields = list(AMOUNTS.values())

    def get_fields(self, request, obj=None):
        shown = [self.AMOUNTS.get(name, name) for name in super().get_fields(request, obj)]
        return list(dict.fromkeys(shown))

    @admin.display(description="Event amount")
    def event_sum(self, obj):
        return money_text(obj.event_amount, obj.event_currency) or "-"

    @admin.display(description="Previous amount")
    def previous_sum(self, obj):
        return money_text(obj.previous_amount, obj.event_currency) or "-"

    def changelist_view(self, request, extra_context=None):
        held = self.get_queryset(request).filter(status=Delivery.HELD).count()
        may_resend = self.has_resend_permission(request)
        extra_context = {**(extra_context or {}), "held": held, "may_resend": may_resend}
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        # Every attempt ever logged: `attempts` counts the current round only
        # (a resend starts it anew, so the retry schedule does too).
        logged = (
            DeliveryAttempt.objects.filter(delivery=OuterRef("pk"))
            .order_by()
            .values("delivery")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(attempts_made=Coalesce(Subquery(logged, output_field=IntegerField()), 0))
        )

    @admin.display(description="Created", ordering="created")
    def made(self, obj):
        return f"{timezone.localtime(obj.created):%Y-%m-%d %H:%M}"

    @admin.display(description="Target")
    def target(self, obj):
        return obj.target_name

    @admin.display(description="Status", ordering="status")
    def state(self, obj):
        return state_cell(obj)

    @admin.display(description="Attempts", ordering="attempts_made")
    def attempts_made(self, obj):
        return obj.attempts_made

    @admin.display(description="Next try", ordering="next_attempt")
    def next_try(self, obj):
        if obj.status != Delivery.PENDING or obj.next_attempt is None:
            return "-"
        at = timezone.localtime(obj.next_attempt)
        when = f"{at:%H:%M}" if at.date() == timezone.localdate() else f"{at:%Y-%m-%d %H:%M}"
        left = (obj.next_attempt - timezone.now()).total_seconds()
        if left <= 0:
            return format_html('<span title="{}">{}, due now</span>', at.isoformat(), when)
        return format_html('<span title="{}">{} (in {})</span>', at.isoformat(), when, span(left))

    def has_resend_permission(self, request):
        return request.user.has_perm("postbacks.resend_delivery")

    @admin.action(
        description="Resend selected deliveries (same delivery id)", permissions=["resend"]
    )
    def resend_selected(self, request, queryset):
        ids = attempts.resend(queryset)
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
            ids = attempts.resend(failed)
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

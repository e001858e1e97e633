"""The delivery log: every event's way out, its attempts, resend and drop."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from crm.visibility import VisibleRowsMixin
from postbacks import delivery
from postbacks.models import Delivery, DeliveryAttempt
from tracker.admin_utils import ReadOnlyAdmin, ReadOnlyInline, log_change


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

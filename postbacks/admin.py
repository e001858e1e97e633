from django import forms
from django.contrib import admin
from django.utils.html import format_html

from crm.admin import CustomFieldInline
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback
from tracker import admin as tracker_admin
from tracker.admin_utils import ReadOnlyAdmin, ReadOnlyInline
from tracker.models import Spot


class LockedUrlForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A partner preset fixed this URL: the partner accepts no other.
        if self.instance.pk and self.instance.locked and "url" in self.fields:
            self.fields["url"].disabled = True


class OutgoingPostbackInline(admin.TabularInline):
    model = OutgoingPostback
    form = LockedUrlForm
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

    @admin.display(description="Query")
    def query_short(self, obj):
        return (obj.query[:80] + "…") if len(obj.query) > 80 else obj.query


class OutgoingPostbackAdmin(admin.ModelAdmin):
    list_display = ["name", "spot", "method", "enabled", "disabled_reason", "created"]
    list_filter = ["spot", "enabled", "method"]
    search_fields = ["name", "url"]
    list_select_related = ["spot"]
    filter_horizontal = ["goals"]

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


from postbacks import admin_client  # noqa: E402,F401  (re-registers the client card)

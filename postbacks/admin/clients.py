"""The client card with its conversions' deliveries (crm may not import postbacks)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from crm import admin as crm_admin
from crm.models import Client
from postbacks.models import Delivery

STATUS_COLOURS = {
    Delivery.SUCCESS: "#1e7e34",
    Delivery.FAILED: "#ba2121",
    Delivery.PENDING: "#a36d00",
    Delivery.SENDING: "#a36d00",
    Delivery.SKIPPED: "#666",
}


class ClientAdmin(crm_admin.ClientAdmin):
    readonly_fields = [*crm_admin.ClientAdmin.readonly_fields, "deliveries"]
    fieldsets = [
        *crm_admin.ClientAdmin.fieldsets,
        ("Outgoing postbacks", {"fields": ["deliveries"]}),
    ]

    @admin.display(description="Deliveries")
    def deliveries(self, obj):
        if not obj.pk:
            return "-"
        rows = (
            Delivery.objects.filter(conversion__client=obj)
            .select_related("conversion__goal", "postback", "pixel", "external_goal")
            .order_by("-created")[:100]
        )
        if not rows:
            return "No postbacks sent for this client's conversions."
        body = format_html_join(
            "",
            '<tr class="delivery"><td>{}</td><td>{}</td><td>{}</td>'
            '<td class="delivery-status" style="color:{}">{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    f"{d.created:%Y-%m-%d %H:%M}",
                    d.conversion.goal.token,
                    d.target_name,
                    STATUS_COLOURS.get(d.status, "inherit"),
                    d.get_status_display(),
                    d.attempts,
                    d.last_error[:120],
                )
                for d in rows
            ),
        )
        return format_html(
            '<table id="client-deliveries"><thead><tr><th>Created</th><th>Goal</th>'
            "<th>Target</th><th>Status</th><th>Attempts</th><th>Last error</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            body,
        )


admin.site.unregister(Client)
admin.site.register(Client, ClientAdmin)

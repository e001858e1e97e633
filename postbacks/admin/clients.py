"""The client card with its conversions' deliveries (crm may not import postbacks)."""

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from crm import admin as crm_admin
from crm.models import Client
from postbacks.admin.deliveries import STATE_COLOURS, STATES, clipped, reason
from postbacks.delivery import failing
from postbacks.models import Delivery


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
            # Every attempt logged, resends' too (`attempts` counts the current round).
            .annotate(attempts_made=Count("attempt_log"))
            .order_by("-created")[:100]
        )
        if not rows:
            return "No postbacks sent for this client's conversions."
        body = format_html_join(
            "",
            '<tr class="delivery"><td>{}</td><td>{}</td><td>{}</td>'
            '<td class="delivery-status state-{}" style="color:{}">{}</td><td>{}</td>'
            '<td title="{}">{}</td></tr>',
            (
                (
                    f"{d.created:%Y-%m-%d %H:%M}",
                    d.conversion.goal.token,
                    d.target_name,
                    failing.state(d),
                    STATE_COLOURS.get(failing.state(d), "inherit"),
                    STATES.get(failing.state(d), d.get_status_display()),
                    d.attempts_made,
                    reason(d),
                    clipped(reason(d), 120),
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

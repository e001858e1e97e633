"""Admin of the ad accounts whose daily spend the workers pull (crm/spend_api.py).

The token is write-only, as a pixel's (tracker/admin.py PixelForm). Pulling
is not done here: the action asks the workers (tracker/spend_requests.py),
as a report of seven days may take longer than a request may.
"""

import datetime

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from tracker.admin import PixelForm
from tracker.admin_utils import log_change
from tracker.models import AdAccount
from tracker.spend_requests import spend_wanted

NOW_DAYS = 7


class AdAccountForm(forms.ModelForm):
    """The access token is never put back into the page and is kept when left empty."""

    class Meta:
        model = AdAccount
        fields = ["spot", "network", "account_id", "access_token", "currency", "enabled"]
        widgets = PixelForm.Meta.widgets

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.access_token:
            self.fields["access_token"].widget.attrs["placeholder"] = "set; type to replace"

    clean_access_token = PixelForm.clean_access_token

    def clean_account_id(self):
        return self.cleaned_data["account_id"].strip()

    def clean_currency(self):
        currency = self.cleaned_data.get("currency", "").strip().upper()
        if currency and not (len(currency) == 3 and currency.isalpha()):
            raise forms.ValidationError("Three letters, e.g. USD; or empty for the spot's.")
        return currency


@admin.register(AdAccount)
class AdAccountAdmin(admin.ModelAdmin):
    form = AdAccountForm
    list_display = ["__str__", "spot", "enabled", "token_set", "last_imported", "error_shown"]
    list_filter = ["network", "enabled", "spot"]
    search_fields = ["account_id", "spot__name"]
    list_select_related = ["spot"]
    readonly_fields = ["last_imported", "last_error"]
    actions = ["import_spend_now"]
    fieldsets = [
        (None, {"fields": AdAccountForm.Meta.fields}),
        (
            "Last import",
            {
                "fields": ["last_imported", "last_error"],
                "description": "The workers pull the spend of today and yesterday every hour "
                "(SPEND_IMPORT_INTERVAL, SPEND_IMPORT_DAYS); manage.py import_spend pulls "
                "any days. Last imported is the time of the last pull; Last error is "
                "empty when it worked.",
            },
        ),
    ]

    @admin.display(description="Token", boolean=True)
    def token_set(self, obj):
        return bool(obj.access_token)

    @admin.display(description="Last error", ordering="last_error")
    def error_shown(self, obj):
        if not obj.last_error:
            return ""
        return format_html('<span class="errornote">{}</span>', obj.last_error[:200])

    @admin.action(description=f"Import spend now (last {NOW_DAYS} days)", permissions=["change"])
    def import_spend_now(self, request, queryset):
        until = timezone.localdate()
        since = until - datetime.timedelta(days=NOW_DAYS - 1)
        accounts = list(queryset)
        spend_wanted.send(AdAccount, accounts=[a.pk for a in accounts], since=since, until=until)
        log_change(request, accounts, f"Asked for the spend of {since} to {until}.")
        self.message_user(
            request,
            f"The spend of {len(accounts)} ad account(s) from {since} to {until} is being "
            "imported in the background: Last imported and Last error show how it went.",
            messages.SUCCESS,
        )

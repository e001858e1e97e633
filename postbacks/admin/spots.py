"""The spot page: tracker's Spot admin with the inlines of crm and postbacks.

It lives here because tracker may import neither crm nor postbacks, and the
spot page shows the spot's custom fields and outgoing postbacks.
"""

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from crm.admin import CustomFieldInline
from postbacks.admin.outgoing import LockedUrlForm, postback_state
from postbacks.admin.pixels import PixelInline, PixelTestViews
from postbacks.models import OutgoingPostback
from tracker import admin as tracker_admin
from tracker.models import Spot


class OutgoingPostbackFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        limit = settings.POSTBACKS_MAX_PER_SPOT
        if len(kept) > limit:
            raise ValidationError(f"A spot may have at most {limit} outgoing postbacks.")


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


@admin.register(Spot)
class SpotAdmin(PixelTestViews, tracker_admin.SpotAdmin):
    # The pixel inline with its test send (postbacks/admin/pixels.py).
    inlines = [
        *(
            PixelInline if i is tracker_admin.PixelInline else i
            for i in tracker_admin.SpotAdmin.inlines
        ),
        CustomFieldInline,
        OutgoingPostbackInline,
    ]

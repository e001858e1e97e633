"""Admin of the tracking setup.

The Spot admin is registered in postbacks/admin/spots.py: it shows the inlines of
the upper layers too (custom fields, outgoing postbacks), which this layer
may not import.
"""

import re
import threading

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from tracker.admin_utils import copyable, log_change
from tracker.models import (
    Goal,
    Partner,
    PartnerPostback,
    PartnerPreset,
    Pixel,
    RegistrationLink,
    Spot,
)
from tracker.presets import apply_preset

# The request being rendered, per thread (runserver serves requests in threads).
_current = threading.local()


class GoalInline(admin.TabularInline):
    model = Goal
    fields = ["name", "token", "aliases", "order", "show_count", "show_sum", "revenue"]
    extra = 0
    show_change_link = True


class PixelForm(forms.ModelForm):
    """The access token is write-only: never put back into the page, kept when
    the field is left empty, replaced when something is typed."""

    class Meta:
        model = Pixel
        fields = ["network", "pixel_id", "access_token", "test_event_code", "enabled"] + [
            "send_approved",
            "send_pending",
            "send_rejected",
        ]
        widgets = {"access_token": forms.PasswordInput(render_value=False)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.access_token:
            self.fields["access_token"].widget.attrs["placeholder"] = "set; type to replace"

    def clean_access_token(self):
        return self.cleaned_data.get("access_token") or self.instance.access_token


class PixelInline(admin.TabularInline):
    model = Pixel
    form = PixelForm
    fields = PixelForm.Meta.fields
    extra = 0


class PartnerInline(admin.TabularInline):
    model = Partner
    fields = ["name", "slug", "click_id_param"]
    extra = 0
    show_change_link = True


class SpotAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "crm_enabled", "currency", "goal_count", "created"]
    ordering = ["name"]
    list_filter = ["crm_enabled", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["incoming_postback_url", "postback_token", "bot_api_key", "created"]
    actions = ["regenerate_tokens"]
    inlines = [GoalInline, PixelInline, PartnerInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "crm_enabled", "currency", "target_url"]}),
        (
            "Incoming postbacks",
            {
                "fields": ["incoming_postback_url", "postback_token"],
                "description": "Give this URL to affiliate networks, with their macros in "
                "the parameters: clickid, tracker.event (or goal), tracker.cost (or sum), "
                "tracker.currency, tracker.tid, fields.&lt;key&gt;.",
            },
        ),
        (
            "Callers",
            {"fields": ["allowed_ips", "status_map", "plain_answer"], "classes": ["collapse"]},
        ),
        (
            "Clicks and bots",
            {
                "fields": ["bot_api_key"],
                "description": "Links send leads to /go/&lt;slug&gt;; bots register clients "
                "with POST /api/clients and this key in the X-Api-Key header.",
            },
        ),
        (
            "Managers",
            {
                "fields": ["managers"],
                "description": "A new client without a manager goes to the next active one "
                "of these, in turn.",
            },
        ),
        (None, {"fields": ["created"]}),
    ]
    filter_horizontal = ["managers"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(goal_count=Count("goals"))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "managers":
            # Only people who can log in to the admin can work the clients.
            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Goals", ordering="goal_count")
    def goal_count(self, obj):
        return obj.goal_count

    @admin.display(description="Incoming postback URL")
    def incoming_postback_url(self, obj):
        if not obj.pk:
            return "Shown once the spot is saved."
        url = obj.incoming_url(getattr(_current, "request", None))
        regenerate = reverse("admin:tracker_spot_regenerate_token", args=[obj.pk])
        return format_html(
            '{}<div class="help">Example: {}?clickid={{clickid}}&amp;tracker.event=registration'
            "</div>"
            '<p><button type="submit" class="button" name="_regenerate" '
            'formaction="{}" onclick="return confirm(\'The old URL will stop working. '
            "Regenerate?')\">Regenerate token</button></p>",
            copyable(url),
            url,
            regenerate,
        )

    @admin.display(description="API key")
    def bot_api_key(self, obj):
        if not obj.pk:
            return "Shown once the spot is saved."
        regenerate = reverse("admin:tracker_spot_regenerate_api_key", args=[obj.pk])
        return format_html(
            '{}<p><button type="submit" class="button" name="_regenerate_key" '
            'formaction="{}" onclick="return confirm(\'Bots using the old key will be '
            "refused. Regenerate?')\">Regenerate API key</button></p>",
            copyable(obj.api_key, size=50),
            regenerate,
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The URL field needs the request's host; admin display functions get only obj.
        _current.request = request
        return super().get_form(request, obj, change, **kwargs)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/regenerate-token/",
                self.admin_site.admin_view(require_POST(self.regenerate_token_view)),
                name="tracker_spot_regenerate_token",
            ),
            path(
                "<int:pk>/regenerate-api-key/",
                self.admin_site.admin_view(require_POST(self.regenerate_api_key_view)),
                name="tracker_spot_regenerate_api_key",
            ),
        ]
        return urls + super().get_urls()

    def regenerate_api_key_view(self, request, pk):
        spot = get_object_or_404(Spot, pk=pk)
        if not self.has_change_permission(request, spot):
            messages.error(request, "You may not change this spot.")
        else:
            spot.regenerate_api_key()
            log_change(request, [spot], "Regenerated the bot API key.")
            messages.success(request, f"New API key for {spot}. Give it to your bots.")
        return redirect("admin:tracker_spot_change", spot.pk)

    def regenerate_token_view(self, request, pk):
        spot = get_object_or_404(Spot, pk=pk)
        if not self.has_change_permission(request, spot):
            messages.error(request, "You may not change this spot.")
        else:
            spot.regenerate_token()
            log_change(request, [spot], "Regenerated the postback token.")
            messages.success(
                request, f"New postback token for {spot}. Give the new URL to your networks."
            )
        return redirect("admin:tracker_spot_change", spot.pk)

    @admin.action(
        description="Regenerate the postback token (old URLs stop working)",
        permissions=["change"],
    )
    def regenerate_tokens(self, request, queryset):
        for spot in queryset:
            spot.regenerate_token()
        log_change(request, queryset, "Regenerated the postback token.")
        self.message_user(request, f"Regenerated the token of {queryset.count()} spot(s).")


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    list_display = ["name", "token", "spot", "aliases", "show_count", "show_sum", "revenue"]
    list_filter = ["spot"]
    search_fields = ["name", "token", "aliases"]
    list_select_related = ["spot"]
    fieldsets = [
        (None, {"fields": ["spot", "name", "token", "aliases", "order"]}),
        (
            "Ad-network event names",
            {"fields": ["facebook_event", "tiktok_event", "google_event", "yandex_event"]},
        ),
        ("Forwarding", {"fields": ["external_postback"]}),
        ("Statistics", {"fields": ["show_count", "show_sum", "revenue"]}),
        ("CRM", {"fields": ["message_template"]}),
    ]


class PartnerPostbackInline(admin.StackedInline):
    model = PartnerPostback
    fields = [
        "ready_url",
        ("name", "event", "order"),
        ("amount", "currency", "tid", "status"),
        "fields",
    ]
    readonly_fields = ["ready_url"]
    extra = 0
    verbose_name = "postback configuration"

    @admin.display(description="Paste into the partner")
    def ready_url(self, obj):
        if not obj.pk:
            return "Shown once saved."
        return copyable(obj.incoming_url(getattr(_current, "request", None)), size=140)


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "spot", "slug", "click_id_param", "preset"]
    list_filter = ["spot", "preset"]
    search_fields = ["name", "slug"]
    list_select_related = ["spot"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["preset", "created"]
    inlines = [PartnerPostbackInline]
    change_list_template = "admin/tracker/partner/change_list.html"
    fieldsets = [
        (None, {"fields": ["spot", "name", "slug", "click_id_param", "click_id_macro"]}),
        (
            "Callers",
            {
                "fields": ["status_map", "allowed_ips", "plain_answer"],
                "description": "Applied when the postback URL carries partner=&lt;slug&gt;.",
            },
        ),
        (None, {"fields": ["preset", "created"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        _current.request = request
        return super().get_form(request, obj, change, **kwargs)

    def get_urls(self):
        view = self.admin_site.admin_view(self.from_preset_view)
        return [
            path("from-preset/", view, name="tracker_partner_from_preset"),
            *super().get_urls(),
        ]

    def from_preset_view(self, request):
        if not self.has_add_permission(request):
            messages.error(request, "You may not add partners.")
            return redirect("admin:tracker_partner_changelist")
        form = PresetForm(request.POST or None, initial={"preset": request.GET.get("preset")})
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            partner = apply_preset(
                d["preset"],
                d["spot"],
                click_id_param=d["click_id_param"],
                registration_url=d["registration_url"],
                outgoing_base=d["outgoing_base"],
            )
            self.log_addition(request, partner, f"Added from the preset {d['preset']}.")
            messages.success(
                request,
                f"{partner} is set up: paste its postback URLs below into the partner.",
            )
            return redirect("admin:tracker_partner_change", partner.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a partner from a preset",
            "form": form,
            "presets": PartnerPreset.objects.all(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/tracker/partner/from_preset.html", context)


class PresetForm(forms.Form):
    preset = forms.ModelChoiceField(
        PartnerPreset.objects.all(),
        empty_label=None,
        help_text="No presets? Run: python manage.py load_presets",
    )
    spot = forms.ModelChoiceField(Spot.objects.all(), empty_label=None)
    click_id_param = forms.CharField(
        label="Click-id parameter",
        required=False,
        max_length=64,
        help_text="The partner's parameter for our click id; empty: the preset's.",
    )
    registration_url = forms.URLField(
        label="Registration link",
        required=False,
        max_length=2000,
        help_text="The signup link the partner gave you; we add the click id to it.",
    )
    outgoing_base = forms.URLField(
        label="Your tracker's postback address",
        required=False,
        max_length=500,
        help_text="Only for presets that send events to your tracker (e.g. Keitaro).",
    )

    def clean(self):
        data = super().clean()
        preset = data.get("preset")
        if preset and preset.data.get("outgoing") and not data.get("outgoing_base"):
            self.add_error("outgoing_base", preset.data["outgoing"].get("base_prompt", "Required."))
        spot, limit = data.get("spot"), settings.POSTBACKS_MAX_PER_SPOT
        adds_one = preset and preset.data.get("outgoing") and spot
        # The reverse accessor, not an import: tracker does not import postbacks.
        if adds_one and spot.outgoing_postbacks.count() >= limit:
            self.add_error(
                "spot",
                f"{spot} has {limit} outgoing postbacks, the most a spot may have, and "
                "this preset adds one. Delete one of them or choose another spot.",
            )
        param = data.get("click_id_param", "")
        if param and not re.fullmatch(r"[A-Za-z0-9_.\[\]-]{1,64}", param):
            self.add_error("click_id_param", "Letters, digits, '_', '.', '-' only.")
        return data


@admin.register(PartnerPreset)
class PartnerPresetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "click_id_param", "use_it"]
    readonly_fields = ["slug", "name", "description", "data", "updated"]

    def has_add_permission(self, request):
        return False  # presets come from tracker/presets/*.json (manage.py load_presets)

    @admin.display(description="Click-id parameter")
    def click_id_param(self, obj):
        return obj.data.get("click_id_param", "")

    @admin.display(description="")
    def use_it(self, obj):
        url = reverse("admin:tracker_partner_from_preset") + f"?preset={obj.pk}"
        return format_html('<a class="button" href="{}">Add this partner</a>', url)


@admin.register(RegistrationLink)
class RegistrationLinkAdmin(admin.ModelAdmin):
    list_display = ["name", "spot", "partner", "final_link"]
    list_filter = ["spot", "partner"]
    search_fields = ["name", "base_url"]
    list_select_related = ["spot", "partner"]
    fields = ["spot", "partner", "name", "base_url", "final_link"]
    readonly_fields = ["final_link"]

    @admin.display(description="Final URL with parameters")
    def final_link(self, obj):
        if not obj.pk:
            return "Shown once saved."
        return copyable(obj.final_url, size=100)


from tracker import admin_rq  # noqa: E402,F401  (RQ dashboard, superusers only)

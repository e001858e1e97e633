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
from django.db import models
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from tracker.admin_utils import copyable, log_change
from tracker.models import (
    DEFAULT_GOALS,
    Goal,
    Partner,
    PartnerPostback,
    PartnerPreset,
    Pixel,
    RegistrationLink,
    Spot,
    default_goal_fields,
    default_goals,
    split_words,
)
from tracker.presets import apply_preset
from tracker.signing import new_secret

# The request being rendered, per thread (runserver serves requests in threads).
_current = threading.local()


class GoalFormSet(forms.BaseInlineFormSet):
    """The spot's goals: no event word may mean two of them."""

    def clean(self):
        # Before the formset's own unique check, which names no goal.
        self.clean_words()
        super().clean()

    def clean_words(self):
        seen = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("token"):
                continue
            words = [data["token"], *split_words(data.get("aliases") or "")]
            for word in words:
                other = seen.get(word)
                if other is not None:
                    field = "token" if word == data["token"] else "aliases"
                    form.add_error(field, f"'{word}' already means the goal {other} above.")
                    break
            else:
                for word in words:
                    seen[word] = f"{data.get('name', '')} ({data['token']})"

    def save_new(self, form, commit=True):
        # A default goal's row shows no event names: it gets the standard ones.
        goal = super().save_new(form, commit=False)
        for name, value in default_goal_fields(goal.token).items():
            if name not in form.fields:
                setattr(goal, name, value)
        if commit:
            goal.save()
        return goal


class GoalInline(admin.TabularInline):
    model = Goal
    formset = GoalFormSet
    fields = [
        "name",
        "token",
        "aliases",
        "order",
        "show_count",
        "show_sum",
        "revenue",
        "repeat_mode",
        "message_template",
    ]
    # One line per goal: the template is a sentence, not a page.
    formfield_overrides = {models.TextField: {"widget": forms.TextInput(attrs={"size": 30})}}
    extra = 0
    show_change_link = True

    def get_extra(self, request, obj=None, **kwargs):
        # A new spot's page shows its default goals as rows to edit (SpotAdmin
        # gives their values), so nobody adds a reg that is made anyway.
        return len(DEFAULT_GOALS) if obj is None else 0


def pixel_events(pixel):
    """(goal, event name or '') for each goal of the pixel's spot."""
    field = f"{pixel.network}_event"
    return [(goal, getattr(goal, field)) for goal in pixel.spot.goals.all()]


def silent_revenue_goals(pixel):
    """The revenue goals this pixel hears nothing of: no event name for its network."""
    return [goal for goal, event in pixel_events(pixel) if goal.revenue and not event]


class PixelForm(forms.ModelForm):
    """The access token is write-only: never put back into the page, kept when
    the field is left empty, replaced when something is typed."""

    class Meta:
        model = Pixel
        fields = ["network", "pixel_id", "access_token", "test_event_code", "enabled"] + [
            "send_approved",
            "send_pending",
            "send_rejected",
            # Shaping (postbacks.delivery.fanout), narrow enough for the row.
            "send_share",
            "payout_share",
            "send_mode",
        ]
        widgets = {
            "access_token": forms.PasswordInput(render_value=False),
            "send_share": forms.NumberInput(attrs={"style": "width:4em", "min": 1, "max": 100}),
            "payout_share": forms.NumberInput(attrs={"style": "width:4em", "min": 1, "max": 1000}),
        }
        labels = {"send_share": "share %", "payout_share": "payout %", "send_mode": "mode"}
        help_texts = {
            "send_pending": "Also report a pending conversion as the goal's event (a sale "
            "not confirmed yet). A pixel hears of each sale once: its approval later is "
            "not sent again.",
            "send_rejected": "Never for a pixel: an ad network has no event that takes a "
            "sale back, and a rejection sent as the goal's event (Purchase) would count "
            "as another sale. Rejections reach partners and trackers by outgoing postbacks.",
            "send_share": "Send this share of the events, by a counter per goal (50: every "
            "second one); the others are skipped deliveries saying so.",
            "payout_share": "The value sent is this share of the amount, rounded as the "
            "currency is paid.",
            "send_mode": "All events, the client's first of each goal only, or approved only.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.access_token:
            self.fields["access_token"].widget.attrs["placeholder"] = "set; type to replace"
        # Shown, greyed and unticked, so the status columns read as an outgoing
        # postback's and say why; saving a pixel clears a box ticked before.
        self.fields["send_rejected"].disabled = True
        self.initial["send_rejected"] = False

    def clean_access_token(self):
        return self.cleaned_data.get("access_token") or self.instance.access_token


class PixelInline(admin.TabularInline):
    model = Pixel
    form = PixelForm
    fields = [*PixelForm.Meta.fields, "events"]
    readonly_fields = ["events"]
    extra = 0

    @admin.display(description="Events sent")
    def events(self, obj):
        if not obj.pk:
            return "Shown once the pixel is saved."
        # Tokens, not names: the column stays narrow beside the pixel's fields.
        rows = format_html_join(
            "",
            '<li title="{}">{} &rarr; {}</li>',
            [(g.name, g.token, e) for g, e in pixel_events(obj) if e],
        )
        silent = silent_revenue_goals(obj)
        warning = ""
        if silent:
            warning = format_html(
                '<p class="errornote pixel-silent">No {} event for {}: its deposits are '
                "not sent to this pixel. Set one on the goal.</p>",
                obj.get_network_display(),
                ", ".join(g.label for g in silent),
            )
        return format_html(
            '<ul class="pixel-events" style="margin:0;padding:0;list-style:none">{}</ul>{}',
            rows,
            warning,
        )


class PartnerInline(admin.TabularInline):
    model = Partner
    fields = ["name", "slug", "click_id_param"]
    extra = 0
    show_change_link = True


class SigningSecretMixin:
    """A spot's or partner's signed requests: `require_signature`, and its
    secret, made by Generate (or on saving with signatures required) and shown
    once, on the page after. The form never shows it."""

    secret_url = ""  # the name of the admin URL that makes a new one

    @admin.display(description="Signing secret")
    def signing_secret_state(self, obj):
        if not obj.pk:
            return "Made when the page is saved with signed requests required."
        state = "Set; it was shown once, when made." if obj.signing_secret else "None yet."
        url = reverse(f"admin:{self.secret_url}", args=[obj.pk])
        return format_html(
            '{}<p><button type="submit" class="button" name="_signing_secret" formaction="{}" '
            "onclick=\"return confirm('A new secret replaces the current one at once and is "
            "shown once. Generate?')\">Generate signing secret</button></p>",
            state,
            url,
        )

    def secret_urls(self):
        view = self.admin_site.admin_view(require_POST(self.generate_secret_view))
        return [path("<int:pk>/signing-secret/", view, name=self.secret_url)]

    def generate_secret_view(self, request, pk):
        obj = get_object_or_404(self.model, pk=pk)
        if not self.has_change_permission(request, obj):
            messages.error(request, f"You may not change this {self.opts.verbose_name}.")
        else:
            obj.signing_secret = new_secret()
            obj.save(update_fields=["signing_secret"])
            log_change(request, [obj], "Generated a new signing secret.")
            self.show_secret(request, obj)
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", obj.pk)

    def save_model(self, request, obj, form, change):
        made = obj.require_signature and not obj.signing_secret
        if made:
            obj.signing_secret = new_secret()
        super().save_model(request, obj, form, change)
        if made:
            self.show_secret(request, obj)

    def show_secret(self, request, obj):
        messages.warning(
            request,
            f"The signing secret of {obj}, shown only now: {obj.signing_secret} Give it to "
            "the caller: it signs its JSON POSTs with it (Standard Webhooks).",
        )


class SpotAdmin(SigningSecretMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "crm_enabled", "currency", "goal_count", "created"]
    ordering = ["name"]
    list_filter = ["crm_enabled", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "incoming_postback_url",
        "postback_token",
        "bot_api_key",
        "created",
        "signing_secret_state",
    ]
    secret_url = "tracker_spot_signing_secret"
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
            "Network IPs, status words and answer",
            {
                "fields": [
                    "allowed_ips",
                    "status_map",
                    "plain_answer",
                    "answer_after_processing",
                    "require_signature",
                    "signing_secret_state",
                ],
                "classes": ["collapse"],
            },
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

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.fieldsets
        # A new spot's token and key are made when it is saved: any shown now
        # would not be the saved one.
        hidden = {"postback_token", "created"}
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in hidden]})
            for name, opts in self.fieldsets
            if any(f not in hidden for f in opts["fields"])
        ]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, GoalInline) and obj.pk is None and request.method != "POST":
            kwargs["initial"] = [{"token": t, **fields} for t, fields in default_goals()]
        return kwargs

    def save_model(self, request, obj, form, change):
        # The goal rows of the add page are the default goals, as edited.
        obj.goals_from_form = not change
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            form.instance.create_default_goals()  # those whose rows were removed

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        # The page renders after this returns, so a message added now is on it;
        # only for a spot the page shows (not a redirect, not a refusal).
        spot = (getattr(response, "context_data", None) or {}).get("original")
        if request.method == "GET" and isinstance(spot, Spot):
            self.warn_silent_pixels(request, spot)
        return response

    def warn_silent_pixels(self, request, spot):
        """A pixel that is on but hears nothing of a deposit misleads quietly: say so."""
        for pixel in spot.pixels.filter(enabled=True):
            silent = silent_revenue_goals(pixel)
            if silent:
                messages.warning(
                    request,
                    f"The {pixel.get_network_display()} pixel is on, but "
                    f"{', '.join(g.label for g in silent)} has no event name for it: "
                    "those deposits are not sent. Set the event on the goal.",
                )

    @admin.display(description="Incoming postback URL")
    def incoming_postback_url(self, obj):
        if not obj.pk:
            return "The postback URL appears once the spot is saved."
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
            return "The API key appears once the spot is saved."
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
            *self.secret_urls(),
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
class PartnerAdmin(SigningSecretMixin, admin.ModelAdmin):
    list_display = ["name", "spot", "slug", "click_id_param", "preset"]
    list_filter = ["spot", "preset"]
    search_fields = ["name", "slug"]
    list_select_related = ["spot"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["preset", "created", "signing_secret_state"]
    secret_url = "tracker_partner_signing_secret"
    inlines = [PartnerPostbackInline]
    change_list_template = "admin/tracker/partner/change_list.html"
    fieldsets = [
        (None, {"fields": ["spot", "name", "slug", "click_id_param", "click_id_macro"]}),
        (
            "Network IPs, status words and answer",
            {
                "fields": [
                    "status_map",
                    "allowed_ips",
                    "plain_answer",
                    "require_signature",
                    "signing_secret_state",
                ],
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
            *self.secret_urls(),
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
            for text in getattr(partner, "shown_once", []):  # e.g. a signing secret
                messages.warning(request, text)
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


import tracker.admin_accounts  # noqa: E402,F401  (ad accounts of the spend import)
from tracker import admin_rq  # noqa: E402,F401  (RQ dashboard, superusers only)

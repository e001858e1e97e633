"""Outgoing postbacks: their settings, state, preview and test send."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from crm.models import Conversion
from crm.visibility import visible
from postbacks.delivery import attempts, fanout, render, signing
from postbacks.models import Delivery, OutgoingPostback
from tracker import shaping
from tracker.admin_utils import log_change
from tracker.models import PartnerPreset, SendsStatuses


class LockedUrlForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A partner preset fixed this URL: the partner accepts no other.
        if self.instance.pk and self.instance.locked and "url" in self.fields:
            self.fields["url"].disabled = True


def goal_label(goal):
    # Goals of several spots meet in this picker; their names alone repeat.
    return f"{goal.spot.name} · {goal.name} ({goal.token})"


def partner_urls():
    """{partner pk: the URL of its newest outgoing postback}. Seed 000 proposes
    the partner's default URL for a new postback; a partner has no URL field,
    so its default is where the team last sent it (a preset's locked postback
    included). A partner never sent to has none."""
    rows = OutgoingPostback.objects.filter(partner__isnull=False).order_by("created", "pk")
    return dict(rows.values_list("partner_id", "url"))  # the newest comes last and wins


def no_default_url(partner):
    """Why `partner` proposes no URL, and what to write instead."""
    spec = (partner.preset and preset_outgoing(partner.preset)) or {}
    said = f"{partner} has no default URL: no postback has been sent to it yet."
    if spec.get("path"):
        prompt = spec.get("base_prompt", "The partner's address")
        said += f" Its preset gives the path {spec['path']}, after your address ({prompt})."
    return f"{said} Write the URL."


def preset_outgoing(slug):
    preset = PartnerPreset.objects.filter(slug=slug).first()
    return preset.data.get("outgoing") if preset else None


class OutgoingPostbackForm(LockedUrlForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        goals = self.fields.get("goals")
        if goals is not None:
            goals.queryset = goals.queryset.select_related("spot")
            goals.label_from_instance = goal_label
        self.url_from_partner = ""
        url, partner = self.fields.get("url"), self.fields.get("partner")
        if url is not None and partner is not None and not url.disabled:
            # Empty: the chosen partner's default URL is proposed (clean, and
            # the page's script as the partner is picked).
            url.required = False
            urls = {str(pk): value for pk, value in partner_urls().items()}
            select = getattr(partner.widget, "widget", partner.widget)  # inside the admin's wrapper
            select.attrs["data-default-urls"] = json.dumps(urls)
        mode = self.fields.get("send_mode")
        if mode is not None and self.instance.first_event_only and not self.is_bound:
            # "First event only" of before is this mode now: one setting, shown once.
            self.initial["send_mode"] = SendsStatuses.FIRST
        for name in ("send_share", "payout_share", "send_mode"):
            if name in self.fields:
                # Left out of a post (a script's, an older form's): the model's default.
                self.fields[name].required = False

    def clean_url(self):
        url = self.cleaned_data.get("url") or ""
        partner = self.cleaned_data.get("partner")
        if url.strip() or self.fields["url"].disabled:
            return url
        if partner is None:
            # The partner field comes before the URL: a chosen one is known here.
            raise forms.ValidationError(
                "Write the URL, or choose a partner to use its default URL."
            )
        default = partner_urls().get(partner.pk)
        if not default:
            raise forms.ValidationError(no_default_url(partner))
        self.url_from_partner = default
        return default

    def clean(self):
        data = super().clean()
        spot = data.get("spot") or (self.instance.spot if self.instance.spot_id else None)
        if spot and data.get("goals"):
            foreign = [g for g in data["goals"] if g.spot_id != spot.pk]
            if foreign:
                names = ", ".join(f"{g.name} ({g.spot})" for g in foreign)
                self.add_error("goals", f"Goals of another spot never fire here: {names}.")
        for name in ("send_share", "payout_share", "send_mode"):
            if name in self.fields and data.get(name) in (None, ""):
                data[name] = OutgoingPostback._meta.get_field(name).default
        clean_shaping(self, data)
        if data.get("send_mode"):
            self.instance.first_event_only = data["send_mode"] == SendsStatuses.FIRST
        return data


SHAPING = ["min_amount", "max_amount", "geos", "campaign_pattern"]


def clean_shaping(form, data):
    """Form errors for shaping that can never mean what it says (min over
    max, a country that is no code, a regular expression for a pattern);
    the countries written back as the list fan-out reads."""
    present = {name: data.get(name) for name in SHAPING if name in form.fields}
    for name, message in shaping.errors(**present).items():
        if name in form.fields and name not in form.errors:
            form.add_error(name, message)
    if "geos" in form.fields and "geos" not in form.errors and data.get("geos"):
        data["geos"] = ", ".join(shaping.parse_geos(data["geos"]))


def postback_state(obj):
    """On, off or disabled by failures, how many deliveries it holds, and how
    many of its deliveries are failing now (retrying, or failed in 24 h)."""
    from postbacks.delivery.failing import WINDOW_HOURS, failing_by_postback

    failing = failing_by_postback(postback_ids=[obj.pk]).get(obj.pk) if obj.pk else None
    trouble = ""
    if failing:
        kinds = ((failing.retrying, "retrying"), (failing.failed, f"failed in {WINDOW_HOURS} h"))
        counts = [f"{n} {word}" for n, word in kinds if n]
        link = reverse("admin:postbacks_delivery_changelist") + f"?postback__id__exact={obj.pk}"
        trouble = format_html(
            ' · <a class="postback-failing" href="{}" style="color:{}" title="{}">'
            "{} failing now ({})</a>",
            link,
            "#ba2121" if failing.failed else "#a36d00",
            failing.last_error,
            failing.total,
            ", ".join(counts),
        )
    if obj.enabled:
        return format_html("Enabled{}", trouble)
    held = obj.deliveries.filter(status=Delivery.HELD).count() if obj.pk else 0
    holding = f" · {held} deliveries held, sent when switched on" if held else ""
    if obj.disabled_reason:
        return format_html(
            '<strong style="color:#ba2121">Disabled: {}</strong>{}{}',
            obj.disabled_reason,
            holding,
            trouble,
        )
    return format_html("Off{}{}", holding, trouble)


# What a locked (partner preset) postback ignores, and what its page says instead.
LOCKED_IGNORES = {
    "first_event_only",
    "reengagement_window",
    "all_users",
    # Shaping is for traffic sources; a partner counts every event, as it came.
    "send_share",
    "payout_share",
    "send_mode",
    *SHAPING,
}
LOCKED_SENDS = (
    "A partner's fixed postback is sent for every event of its goals in the statuses "
    "ticked here: first event only, the re-engagement window and the attribution do not "
    "apply to it, nor shaping (shares, mode, conditions)."
)


def _without(fields, names):
    kept = []
    for field in fields:
        if isinstance(field, (list, tuple)):
            row = tuple(f for f in field if f not in names)
            if row:
                kept.append(row)
        elif field not in names:
            kept.append(field)
    return kept


def without_send_rules(name, options):
    """A fieldset of a locked postback: without the settings fan-out ignores for it."""
    fields = _without(options["fields"], LOCKED_IGNORES)
    if fields == list(options["fields"]):
        return name, options
    return name, {**options, "fields": fields, "description": LOCKED_SENDS}


def show_secret(request, postback, secret, why):
    """The one time a signing secret is shown: the page after it was made."""
    messages.warning(
        request,
        f"{why} The signing secret of {postback}, shown only now: {secret} "
        "Give it to the receiver to verify webhook-signature; it is never shown again.",
    )


class OutgoingPostbackAdmin(admin.ModelAdmin):
    form = OutgoingPostbackForm
    change_form_template = "admin/postbacks/outgoing_change_form.html"
    list_display = ["name", "spot", "method", "enabled", "state", "created"]
    list_filter = ["spot", "enabled", "method"]
    search_fields = ["name", "url"]
    list_select_related = ["spot"]
    filter_horizontal = ["goals"]
    readonly_fields = ["test_link", "consecutive_failures", "state", "signing_state"]
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
                    "status_words",
                    "required_macros",
                    "timeout",
                ],
                "description": "Macros: {click_id}, {cl_id}, {action}, {sum}, {currency}, "
                "{tid}, {status}, {geo}, {user_id}, {username}, {name}, {player_id}, {manager}, "
                "{now}, {advert__campaign_id} and the other {advert__...}, {params__X}, "
                "{fields__X}; for ad networks' matching {ip}, {ua}, {fbclid}, {fbc} (built from "
                "fbclid when no cookie came), {fbp}, {ttclid}, {gclid}, {page_url}. Other "
                "trackers' names work too: {click} (click id), {id} (client id), {adid} (ad "
                "id), {phone}, and impact.com's as it writes them ({CampaignId}, {ActionId}, "
                "{Payout}, {Currency}, {EventDate}, {MediaPartnerName}, ... see the README). "
                "Receiver's status words turn {status} into the receiver's own word (Keitaro: "
                "approved = sale, pending = lead, rejected = rejected); never write a fixed "
                "status such as status=sale, or a chargeback arrives as a sale. Required "
                "macros (e.g. cl_id) must have a value: an event without one is skipped, with "
                "the reason in the delivery list, instead of sending subid= to the receiver.",
            },
        ),
        (
            "When to send",
            {
                "fields": [
                    ("send_approved", "send_pending", "send_rejected"),
                    "reengagement_window",
                    "all_users",
                ],
                "description": "A conversion is sent when it reaches a status ticked here, "
                "when made or later (a pending one approved, an approved one charged back); "
                "{status}, {previous_status} and {previous_sum} say which.",
            },
        ),
        (
            "Shaping",
            {
                "fields": [
                    ("send_share", "payout_share"),
                    "send_mode",
                    ("min_amount", "max_amount"),
                    "geos",
                    "campaign_pattern",
                ],
                "description": "What this source is told. An event that does not fit is "
                "kept as a skipped delivery saying why. Send share: by a counter per goal "
                "(50: the 1st, 3rd, 5th ... of each goal go); a conversion's later status "
                "changes follow its first event. Payout share: {sum} (and {previous_sum}) "
                "at this share of the amount, rounded as the currency is paid (none for "
                "JPY, KRW); {sum_original} is the amount as it came. First event per client: "
                "the client's first conversion of each goal. The campaign is the client's "
                "campaign name, else its id.",
            },
        ),
        ("Pace", {"fields": ["min_delay", "max_rps"]}),
        (
            "Signing",
            {
                "fields": ["signed", "signing_state"],
                "description": "Standard Webhooks v1: the receiver checks webhook-signature "
                "with the secret (see the README's Signed requests).",
            },
        ),
        (
            "Responses",
            {"fields": ["success_status", "success_text", "error_status", "error_text"]},
        ),
        ("Health", {"fields": ["consecutive_failures", "state"]}),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        secret = signing.ensure_secret(obj)
        if secret:
            show_secret(request, obj, secret, "Its requests are signed now.")
        if getattr(form, "url_from_partner", ""):
            self.message_user(
                request,
                f"The URL was empty: it is now {obj.partner}'s default URL, "
                f"{form.url_from_partner}. Check it says what this postback should send.",
                messages.INFO,
            )

    @admin.display(description="State")
    def state(self, obj):
        return postback_state(obj)

    @admin.display(description="Test")
    def test_link(self, obj):
        if not obj.pk:
            return "Preview and test send once the postback is saved."
        url = reverse("admin:postbacks_outgoingpostback_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Preview and test send</a>', url)

    @admin.display(description="Signing secret")
    def signing_state(self, obj):
        if not obj.signing_secret:
            return "Made and shown once when signing is switched on and the postback saved."
        old = ""
        if obj.old_secret_until and obj.old_secret_until > attempts.now():
            old = f" The previous secret also signs until {obj.old_secret_until:%Y-%m-%d %H:%M}."
        rotate = reverse("admin:postbacks_outgoingpostback_rotate_secret", args=[obj.pk])
        return format_html(
            "Set; it was shown once, when made.{}"
            '<p><button type="submit" class="button" name="_rotate_secret" formaction="{}" '
            "onclick=\"return confirm('A new secret is made and shown once; the current one "
            "keeps signing for {} hours. Rotate?')\">Rotate signing secret</button></p>",
            old,
            rotate,
            int(signing.grace().total_seconds() // 3600),
        )

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/test/",
                self.admin_site.admin_view(self.test_view),
                name="postbacks_outgoingpostback_test",
            ),
            path(
                "<int:pk>/rotate-secret/",
                self.admin_site.admin_view(require_POST(self.rotate_secret_view)),
                name="postbacks_outgoingpostback_rotate_secret",
            ),
        ]
        return urls + super().get_urls()

    def rotate_secret_view(self, request, pk):
        postback = get_object_or_404(OutgoingPostback, pk=pk)
        if not self.has_change_permission(request, postback):
            messages.error(request, "You may not change this postback: the secret is unchanged.")
            return redirect("admin:postbacks_outgoingpostback_change", postback.pk)
        secret = signing.rotate(postback)
        log_change(request, [postback], "Rotated the signing secret.")
        hours = int(signing.grace().total_seconds() // 3600)
        show_secret(
            request, postback, secret, f"The previous secret keeps signing for {hours} hours."
        )
        return redirect("admin:postbacks_outgoingpostback_change", postback.pk)

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
        req, attempt, error, missing, verdict = None, None, "", "", ""
        try:
            req = attempts.preview(postback, chosen)
            missing = render.missing_required(postback, attempts.context_for(postback, chosen))
            # Fan-out's own checks, for the picked conversion as if its event came now.
            verdict = fanout.verdict(postback, chosen) if chosen is not None else ""
        except Exception as e:  # a template the admin cannot render is shown, not raised
            error = f"Cannot build the request: {e}"
        if request.method == "POST" and req is not None:
            if not self.has_change_permission(request, postback):
                messages.error(request, "Test sends are a team lead's: nothing was sent.")
                return redirect("admin:postbacks_outgoingpostback_test", postback.pk)
            attempt = attempts.test_send(postback, chosen, user=request.user)
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
            "missing": missing,
            "verdict": verdict,
            "test_timeout": attempts.TEST_SEND_TIMEOUT,
            "recent_tests": postback.test_attempts.order_by("-created")[:10],
        }
        return TemplateResponse(request, "admin/postbacks/test_send.html", context)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.locked:
            return fieldsets
        # Seed 000: a partner's fixed postback is sent for every event of its
        # goals whatever the other settings (postbacks.delivery.fanout.skip_reason), so
        # they are not offered on it.
        fieldsets = [without_send_rules(name, options) for name, options in fieldsets]
        return [(name, options) for name, options in fieldsets if options["fields"]]

    def get_readonly_fields(self, request, obj=None):
        # A partner preset fixed this URL: the partner accepts no other.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.locked:
            fields += ["url", "method", "body_format", "body"]
        return fields


admin.site.register(OutgoingPostback, OutgoingPostbackAdmin)

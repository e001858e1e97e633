"""Admin of the tracking setup.

The Spot admin is registered in postbacks/admin.py: it shows the inlines of
the upper layers too (custom fields, outgoing postbacks), which this layer
may not import.
"""

import threading

from django.contrib import admin, messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from tracker.admin_utils import copyable
from tracker.models import Goal, Partner, Pixel, Spot

# The request being rendered, per thread (runserver serves requests in threads).
_current = threading.local()


class GoalInline(admin.TabularInline):
    model = Goal
    fields = ["name", "token", "aliases", "order", "show_count", "show_sum"]
    extra = 0
    show_change_link = True


class PixelInline(admin.TabularInline):
    model = Pixel
    fields = ["network", "pixel_id", "access_token", "test_event_code", "enabled"]
    extra = 0


class PartnerInline(admin.TabularInline):
    model = Partner
    fields = ["name", "slug", "click_id_param"]
    extra = 0
    show_change_link = True


class SpotAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "crm_enabled", "currency", "goal_count", "created"]
    list_filter = ["crm_enabled", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["incoming_postback_url", "postback_token", "created"]
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
        (None, {"fields": ["created"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(goal_count=Count("goals"))

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
            )
        ]
        return urls + super().get_urls()

    def regenerate_token_view(self, request, pk):
        spot = get_object_or_404(Spot, pk=pk)
        if not self.has_change_permission(request, spot):
            messages.error(request, "You may not change this spot.")
        else:
            spot.regenerate_token()
            messages.success(
                request, f"New postback token for {spot}. Give the new URL to your networks."
            )
        return redirect("admin:tracker_spot_change", spot.pk)

    @admin.action(description="Regenerate the postback token (old URLs stop working)")
    def regenerate_tokens(self, request, queryset):
        for spot in queryset:
            spot.regenerate_token()
        self.message_user(request, f"Regenerated the token of {queryset.count()} spot(s).")


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    list_display = ["name", "token", "spot", "aliases", "show_count", "show_sum"]
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
        ("Statistics", {"fields": ["show_count", "show_sum"]}),
        ("CRM", {"fields": ["message_template"]}),
    ]


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "spot", "slug", "click_id_param", "preset"]
    list_filter = ["spot", "preset"]
    search_fields = ["name", "slug"]
    list_select_related = ["spot"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["preset", "created"]

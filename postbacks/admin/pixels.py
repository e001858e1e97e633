"""A pixel's test send: one event to the network's test mode, from the spot page.

Meta and TikTok get the pixel's test event code (the event shows in their
Test Events tool and nowhere else), GA4 its validation server, which answers
what is wrong and records nothing. Metrica has no test mode, so it has no
test send. The pixel inline (tracker/admin.py) gets its link here, as
tracker may not name postbacks' views.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.models import Conversion
from crm.visibility import visible
from postbacks.delivery import attempts, pixel_batch
from tracker import admin as tracker_admin
from tracker.admin_utils import log_change
from tracker.models import Pixel


class PixelInline(tracker_admin.PixelInline):
    fields = [*tracker_admin.PixelInline.fields, "test_link"]
    readonly_fields = [*tracker_admin.PixelInline.readonly_fields, "test_link"]

    @admin.display(description="Test")
    def test_link(self, obj):
        if not obj.pk:
            return "Once the pixel is saved."
        if obj.network not in pixel_batch.TESTABLE:
            return "Metrica has no test mode."
        url = reverse("admin:tracker_pixel_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Send a test event</a>', url)


class PixelTestViews:
    """The spot admin's view of a pixel's test send (mixed into SpotAdmin)."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.pixel_test_view)
        urls = [path("pixel/<int:pk>/test/", view, name="tracker_pixel_test")]
        return urls + super().get_urls()

    def pixel_test_view(self, request, pk):
        pixel = get_object_or_404(Pixel.objects.select_related("spot"), pk=pk)
        if not self.has_view_permission(request, pixel.spot):
            raise PermissionDenied
        event_field = f"goal__{pixel.network}_event"
        own = visible(request.user, Conversion.objects.filter(spot=pixel.spot), "client__")
        own = own.exclude(**{event_field: ""}).select_related("client__spot", "goal")
        conversions = own.order_by("-created")[:20]
        conv_id = request.POST.get("conversion") or request.GET.get("conversion")
        chosen = own.filter(pk=conv_id).first() if str(conv_id or "").isdigit() else None
        conversion = chosen or pixel_batch.sample(pixel)
        req, attempt, error = None, None, ""
        if pixel.network not in pixel_batch.TESTABLE:
            error = "Metrica has no test mode: an uploaded conversion counts, so none is sent."
        elif conversion is None:
            error = f"No goal of this spot has a {pixel.get_network_display()} event: set one."
        else:
            try:
                req = pixel_batch.test_request(pixel, conversion)
            except ValueError as e:  # a conversion no pixel is told of (a rejection)
                error = str(e)
        if request.method == "POST" and req is not None:
            if not self.has_change_permission(request, pixel.spot):
                messages.error(request, "Test sends are a team lead's: nothing was sent.")
                return redirect("admin:tracker_pixel_test", pixel.pk)
            attempt = pixel_batch.test_send(pixel, conversion, user=request.user)
            log_change(request, [pixel.spot], f"Test event to {pixel}: {attempt}.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Send a test event: {pixel}",
            "pixel": pixel,
            "conversions": conversions,
            "chosen": chosen,
            "req": req,
            "attempt": attempt,
            "error": error,
            "test_timeout": attempts.TEST_SEND_TIMEOUT,
        }
        return TemplateResponse(request, "admin/postbacks/pixel_test.html", context)

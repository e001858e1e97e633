"""The admin of outgoing postbacks: preview, test send, delivery log, resend."""

import pytest
from django.urls import reverse
from django.utils import timezone

from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def postback(spot, receiver):
    return OutgoingPostback.objects.create(
        spot=spot, name="Partner", url=receiver.url + "/pb?c={click_id}&s={sum}"
    )


def test_the_preview_renders_the_exact_request_for_a_chosen_conversion(
    admin_client, postback, lead
):
    conversion, _, _ = accept(lead, "dep", amount=7)
    url = reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
    page = admin_client.get(url, {"conversion": conversion.pk}).content.decode()
    assert f"GET {postback.url.split('?')[0]}?c={lead.click_id}&amp;s=7.00" in page


def test_a_test_send_shows_the_response_and_is_never_retried(
    admin_client, postback, receiver, settings
):
    receiver.reply(500, "broken on purpose")
    url = reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
    page = admin_client.post(url, {"conversion": ""}).content.decode()
    assert "Failure: HTTP 500" in page and "broken on purpose" in page
    [got] = receiver.wait_for(1)
    assert got.path.startswith("/pb?c=0123456789abcdef")
    attempt = DeliveryAttempt.objects.get()
    assert attempt.test and attempt.delivery is None and attempt.postback == postback
    assert not Delivery.objects.exists()
    drain()
    assert len(receiver.requests) == 1


def test_a_delivery_page_shows_every_attempt_with_request_and_response(
    admin_client, postback, lead, receiver
):
    receiver.reply(500, "first failed")
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    page = admin_client.get(reverse("admin:postbacks_delivery_change", args=[d.pk]))
    text = page.content.decode()
    assert "first failed" in text and f"X-Delivery-Id: {d.pk}" in text
    assert text.count("GET http://127.0.0.1") == 2


def test_a_delivery_page_shows_its_amounts_as_money(admin_client, postback, lead):
    _, _, [d] = accept(lead, "dep", amount="25")
    page = admin_client.get(reverse("admin:postbacks_delivery_change", args=[d.pk]))
    text = page.content.decode()
    assert "25.00 USD" in text and "25.00000000" not in text
    # In its place among the event's values, once.
    assert text.index("Event status") < text.index("Event amount") < text.index("Event currency")
    assert text.count("Event amount") == 1


def test_the_delivery_log_filters_by_status_and_postback(admin_client, postback, lead):
    accept(lead, "reg")
    url = reverse("admin:postbacks_delivery_changelist")
    assert admin_client.get(url, {"status": "pending"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"status": "failed"}).context["cl"].result_count == 0
    page = admin_client.get(url, {"postback__id__exact": postback.pk})
    assert page.context["cl"].result_count == 1


def test_resend_selected_and_resend_failed_in_a_date_range(
    admin_client, postback, lead, receiver, settings
):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    receiver.reply(500)
    receiver.reply(500)
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    assert d.status == Delivery.FAILED
    changelist = reverse("admin:postbacks_delivery_changelist")
    admin_client.post(changelist, {"action": "resend_selected", "_selected_action": [d.pk]})
    drain()
    d.refresh_from_db()
    assert d.status == Delivery.FAILED and len(receiver.requests) == 2
    today = timezone.localdate().isoformat()
    url = reverse("admin:postbacks_delivery_resend_failed")
    assert "Resend failed in a date range" in admin_client.get(changelist).content.decode()
    admin_client.post(url, {"since": today, "until": today})
    drain()
    d.refresh_from_db()
    assert d.status == Delivery.SUCCESS and len(receiver.requests) == 3


def test_a_disabled_postback_is_flagged_on_the_spot_page(admin_client, postback, spot):
    OutgoingPostback.objects.filter(pk=postback.pk).update(
        enabled=False, disabled_reason="50 failed attempts in a row"
    )
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk]))
    assert "Disabled: 50 failed attempts in a row" in page.content.decode()


def test_an_unknown_macro_is_a_form_error_naming_it(admin_client, spot):
    url = reverse("admin:postbacks_outgoingpostback_add")
    response = admin_client.post(
        url,
        {
            "spot": spot.pk,
            "name": "x",
            "url": "https://a.example/?c={clickid}",
            "method": "GET",
            "body_format": "none",
            "timeout": "10",
        },
    )
    assert response.status_code == 200
    assert "Unknown macro {clickid}" in response.content.decode()
    assert not OutgoingPostback.objects.exists()


def test_a_sixth_postback_on_the_spot_page_is_a_form_error(admin_client):
    from tests.test_admin import spot_form

    data = spot_form(**{"outgoing_postbacks-TOTAL_FORMS": "6"})
    for n in range(6):
        prefix = f"outgoing_postbacks-{n}"
        data.update(
            {
                f"{prefix}-name": f"p{n}",
                f"{prefix}-url": "https://a.example/",
                f"{prefix}-method": "GET",
            }
        )
    response = admin_client.post(reverse("admin:tracker_spot_add"), data)
    assert response.status_code == 200
    assert "at most 5 outgoing postbacks" in response.content.decode()
    assert not OutgoingPostback.objects.exists()

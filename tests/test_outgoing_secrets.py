"""Secrets a request carries (pixel tokens, headers marked secret) are sent as
they are but masked in the stored attempt and on every admin page."""

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from postbacks.delivery.fanout import accept
from postbacks.delivery.render import MASK
from postbacks.models import DeliveryAttempt, OutgoingPostback
from tests.receiver import drain
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

TOKEN = "EAAB-secret/token+value=="


def test_a_pixel_token_is_sent_but_masked_in_the_attempt_and_the_delivery_page(
    admin_client, spot, lead, receiver, settings
):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n in ("facebook", "google")}
    goal = spot.goals.get(token="dep")
    goal.facebook_event, goal.google_event = "Purchase", "purchase"
    goal.save()
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token=TOKEN)
    Pixel.objects.create(spot=spot, network="google", pixel_id="G-1", access_token=TOKEN)
    accept(lead, "dep", amount=5)
    drain()
    got = receiver.wait_for(2)
    assert any(f'name="access_token"\r\n\r\n{TOKEN}\r\n'.encode() in r.body for r in got)  # Meta
    assert any("api_secret=EAAB-secret%2Ftoken%2Bvalue%3D%3D" in r.path for r in got)  # GA4
    for attempt in DeliveryAttempt.objects.all():
        stored = attempt.url + attempt.request_headers + attempt.request_body
        assert "EAAB-secret" not in stored and MASK in stored
        page = admin_client.get(
            reverse("admin:postbacks_delivery_change", args=[attempt.delivery_id])
        )
        assert "EAAB-secret" not in page.content.decode()


def test_a_header_marked_secret_is_sent_but_masked_in_the_log_and_the_preview(
    admin_client, spot, lead, receiver
):
    pb = OutgoingPostback.objects.create(
        spot=spot,
        name="Own tracker",
        url=receiver.url + "/pb",
        headers=f"Authorization: Bearer {TOKEN}\nX-Signature: {{click_id}}\nX-Team: blue",
        secret_headers="Authorization, X-Signature",
    )
    accept(lead, "reg")
    drain()
    [got] = receiver.wait_for(1)
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"
    assert got.headers["X-Signature"] == lead.click_id
    stored = DeliveryAttempt.objects.get().request_headers
    assert f"Authorization: {MASK}" in stored and f"X-Signature: {MASK}" in stored
    assert "X-Team: blue" in stored and TOKEN not in stored

    preview = admin_client.get(reverse("admin:postbacks_outgoingpostback_test", args=[pb.pk]))
    assert TOKEN not in preview.content.decode() and MASK in preview.content.decode()
    admin_client.post(reverse("admin:postbacks_outgoingpostback_test", args=[pb.pk]), {})
    test_send = DeliveryAttempt.objects.get(test=True)
    assert TOKEN not in test_send.request_headers


def test_authorization_is_masked_by_default(spot, lead, receiver):
    OutgoingPostback.objects.create(
        spot=spot, name="p", url=receiver.url + "/pb", headers=f"Authorization: {TOKEN}"
    )
    accept(lead, "reg")
    drain()
    assert receiver.wait_for(1)[0].headers["Authorization"] == TOKEN
    assert TOKEN not in DeliveryAttempt.objects.get().request_headers


@pytest.mark.parametrize("timeout", ["0", "0.1", "61", "600"])
def test_a_timeout_outside_its_bounds_is_a_form_error(admin_client, spot, timeout):
    response = admin_client.post(
        reverse("admin:postbacks_outgoingpostback_add"),
        {
            "spot": spot.pk,
            "name": "x",
            "url": "https://a.example/",
            "method": "GET",
            "body_format": "none",
            "timeout": timeout,
        },
    )
    assert response.status_code == 200
    assert "The timeout must be between 0.5 and 60 seconds." in response.content.decode()
    assert not OutgoingPostback.objects.exists()


def test_a_claim_shorter_than_twice_the_longest_attempt_is_a_system_error(settings):
    settings.POSTBACKS_MAX_TIMEOUT = 60
    settings.POSTBACKS_CLAIM_SECONDS = 100
    assert "postbacks.E001" in {e.id for e in run_checks()}
    settings.POSTBACKS_CLAIM_SECONDS = 120
    settings.RQ_QUEUES = {"default": {**settings.RQ_QUEUES["default"], "DEFAULT_TIMEOUT": 120}}
    ids = {e.id for e in run_checks()}
    assert "postbacks.E001" not in ids and "postbacks.E002" in ids


def test_an_attempt_never_runs_longer_than_the_bound_whatever_the_row_says(
    spot, lead, receiver, settings
):
    settings.POSTBACKS_MAX_TIMEOUT = 0.5
    pb = OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    OutgoingPostback.objects.filter(pk=pb.pk).update(timeout=3600)  # saved before the bound
    receiver.reply(200, "late", delay=2)
    accept(lead, "reg")
    drain(timeout=10)
    first = DeliveryAttempt.objects.order_by("number").first()
    assert not first.success and first.duration_ms < 1500


def test_the_spot_page_never_shows_a_pixel_token_and_keeps_it_when_left_empty(admin_client, spot):
    pixel = Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token=TOKEN)
    url = reverse("admin:tracker_spot_change", args=[spot.pk])
    page = admin_client.get(url)
    assert TOKEN not in page.content.decode() and "set; type to replace" in page.content.decode()

    def save(token):
        data = {}
        for formset in page.context["inline_admin_formsets"]:
            management = formset.formset.management_form
            data.update({management.add_prefix(k): v for k, v in management.initial.items()})
            for form in formset.formset.forms:
                for name, field in form.fields.items():
                    value = form.initial.get(name, field.initial)
                    if value is not None and not isinstance(value, bool):
                        data[form.add_prefix(name)] = getattr(value, "pk", value)
                    elif value is True:
                        data[form.add_prefix(name)] = "on"
        form = page.context["adminform"].form
        data.update({k: v for k, v in form.initial.items() if isinstance(v, str | int)})
        data["crm_enabled"] = "on" if spot.crm_enabled else ""
        data["pixels-0-access_token"] = token
        response = admin_client.post(url, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        pixel.refresh_from_db()
        return pixel.access_token

    assert save("") == TOKEN
    assert save("new-token") == "new-token"


def test_an_embedded_sqlite_too_old_for_the_claim_is_a_system_error(monkeypatch, settings):
    from postbacks import checks

    assert "postbacks.E003" not in {e.id for e in run_checks()}  # this machine's
    monkeypatch.setattr(checks, "SQLITE_MIN", (99, 0))
    sqlite = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert ("postbacks.E003" in {e.id for e in run_checks()}) == sqlite

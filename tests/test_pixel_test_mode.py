"""A pixel's test send uses the network's test mode (issue 28, point 7): Meta's
and TikTok's test event code, GA4's validation server; real events never carry
the test code."""

import json
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from crm.models import Client
from postbacks.delivery.fanout import accept
from postbacks.models import DeliveryAttempt
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def networks(settings, receiver):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    return receiver


def pixel_of(spot, network, **fields):
    spot.goals.update(**{f"{network}_event": ""})
    spot.goals.filter(token="dep").update(**{f"{network}_event": "purchase"})
    return Pixel.objects.create(
        spot=spot, network=network, pixel_id="P1", access_token="TOKEN1", **fields
    )


def send_test(admin_client, pixel):
    url = reverse("admin:tracker_pixel_test", args=[pixel.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    answer = admin_client.post(url, {"conversion": ""})
    assert answer.status_code == 200
    return answer


def test_facebook_test_send_carries_the_test_event_code(admin_client, spot, networks):
    pixel = pixel_of(spot, "facebook", test_event_code="TEST123")
    answer = send_test(admin_client, pixel)
    [got] = networks.requests
    form = form_fields(got.body)
    assert form["test_event_code"] == ["TEST123"]
    [entry] = json.loads(form["data"][0])
    assert entry["event_name"] == "purchase" and entry["event_id"].startswith("test-")
    attempt = DeliveryAttempt.objects.get(test=True)
    assert attempt.delivery is None and attempt.success
    assert "TOKEN1" not in attempt.request_body
    assert b"Success" in answer.content


def test_tiktok_test_send_carries_the_test_event_code(admin_client, spot, networks):
    pixel = pixel_of(spot, "tiktok", test_event_code="TEST9")
    networks.reply(200, json.dumps({"code": 40002, "message": "Invalid event"}))
    answer = send_test(admin_client, pixel)
    [got] = networks.requests
    assert json.loads(got.body)["test_event_code"] == "TEST9"
    # TikTok answers 200 with its own code: a refusal is shown as one.
    assert b"TikTok code 40002: Invalid event" in answer.content
    assert not DeliveryAttempt.objects.get(test=True).success


def test_ga4_test_send_goes_to_the_validation_server(admin_client, spot, networks):
    pixel = pixel_of(spot, "google")
    message = {"fieldPath": "events[0].name", "description": "Event name is reserved."}
    networks.reply(200, json.dumps({"validationMessages": [message]}))
    answer = send_test(admin_client, pixel)
    [got] = networks.requests
    assert urlsplit(got.path).path == "/debug/mp/collect"
    assert b"Event name is reserved." in answer.content


def test_real_events_never_carry_the_test_code(spot, lead, networks):
    pixel_of(spot, "facebook", test_event_code="TEST123")
    accept(lead, "dep", amount=5, currency="USD", tid="real")
    drain()
    [got] = networks.requests
    assert "test_event_code" not in form_fields(got.body)


def test_metrica_has_no_test_send(admin_client, spot, networks):
    pixel = pixel_of(spot, "yandex")
    url = reverse("admin:tracker_pixel_test", args=[pixel.pk])
    page = admin_client.post(url, {"conversion": ""})
    assert b"Metrica has no test mode" in page.content
    assert networks.requests == []


def test_the_spot_page_links_each_pixel_to_its_test_send(admin_client, spot, networks):
    pixel = pixel_of(spot, "facebook")
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk]))
    assert reverse("admin:tracker_pixel_test", args=[pixel.pk]).encode() in page.content


def test_a_test_send_can_use_a_real_conversion(admin_client, spot, networks):
    pixel = pixel_of(spot, "facebook")
    client = Client.objects.create(spot=spot, name="Bo")
    conversion = accept(client, "dep", amount=42, tid="x")[0]
    networks.requests.clear()
    url = reverse("admin:tracker_pixel_test", args=[pixel.pk])
    admin_client.post(url, {"conversion": conversion.pk})
    got = networks.requests[-1]
    [entry] = json.loads(form_fields(got.body)["data"][0])
    assert entry["custom_data"]["value"] == 42.0

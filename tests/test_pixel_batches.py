"""Due events of one pixel go out together, as the networks take them (issue
28, point 5): Facebook and TikTok up to 1,000 a request, GA4 up to 25 of one
client; each event checked first, each delivery logged with its own attempt,
and the network's answer mapped back onto each event."""

import datetime
import json
import re
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from crm.models import Client, Conversion
from postbacks.delivery import batch
from postbacks.models import Delivery, DeliveryAttempt
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def networks(settings, receiver):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    # Retries an hour away, so one pass shows what a send left for retry.
    settings.POSTBACKS_DELAY_SCALE = 1
    return receiver


def due(spot, pixel, n, client=None, goal="dep"):
    """n pending deliveries of n conversions of `client` to `pixel`, due now."""
    client = client or Client.objects.create(spot=spot, name="Ann")
    goal = spot.goals.get(token=goal)
    conversions = Conversion.objects.bulk_create(
        [Conversion(spot=spot, client=client, goal=goal, amount=25, tid=f"t{i}") for i in range(n)]
    )
    at = timezone.now()
    rows = [
        Delivery(
            conversion=c,
            spot=spot,
            pixel=pixel,
            status=Delivery.PENDING,
            next_attempt=at,
            event_time=at,
        )
        for c in conversions
    ]
    Delivery.objects.bulk_create(rows)
    return list(Delivery.objects.filter(conversion__in=conversions))


def pixel_of(spot, network):
    """The spot's pixel at `network`, told of deposits only (no lead events)."""
    spot.goals.update(**{f"{network}_event": ""})
    spot.goals.filter(token__in=["dep", "reg"]).update(**{f"{network}_event": "Purchase"})
    return Pixel.objects.create(spot=spot, network=network, pixel_id="P1", access_token="TOKEN1")


def facebook_events(request):
    return json.loads(form_fields(request.body)["data"][0])


def test_2500_facebook_events_reach_the_graph_api_in_3_requests(spot, networks):
    pixel = pixel_of(spot, "facebook")
    deliveries = due(spot, pixel, 2500)
    drain(timeout=60)
    assert len(networks.requests) == 3
    sent = [e["event_id"] for r in networks.requests for e in facebook_events(r)]
    assert sorted(sent) == sorted(str(d.pk) for d in deliveries)
    assert Delivery.objects.filter(status=Delivery.SUCCESS).count() == 2500
    # Each delivery keeps its own attempt: its own entry, the batch's answer.
    assert DeliveryAttempt.objects.count() == 2500
    attempt = DeliveryAttempt.objects.get(delivery=deliveries[0])
    assert attempt.success and attempt.response_status == 200 and attempt.number == 1
    assert re.match(r"Event \d+ of (1000|500) in one request:\n", attempt.request_body)
    entry = json.loads(attempt.request_body.split("\n", 1)[1])
    assert entry["event_id"] == str(deliveries[0].pk)
    assert attempt.url.endswith("/v18.0/P1/events")


def test_one_invalid_event_fails_alone_and_the_other_999_are_sent(spot, networks):
    pixel = pixel_of(spot, "facebook")
    good = due(spot, pixel, 999)
    [bad] = due(spot, pixel, 1, goal="reg")  # a goal whose event name was taken away
    spot.goals.filter(token="reg").update(facebook_event="")
    drain(timeout=30)
    [request] = networks.requests
    assert len(facebook_events(request)) == 999
    bad.refresh_from_db()
    assert bad.status == Delivery.FAILED
    assert "missing event_name" in bad.last_error
    assert not DeliveryAttempt.objects.filter(delivery=bad).exists()  # never sent
    assert Delivery.objects.filter(pk__in=[d.pk for d in good], status="success").count() == 999


def test_an_event_without_any_user_data_fails_alone(spot, networks):
    pixel = pixel_of(spot, "facebook")
    due(spot, pixel, 3)
    [bad] = due(spot, pixel, 1, client=Client.objects.create(spot=spot, name="Nobody"))
    Client.objects.filter(pk=bad.conversion.client_id).update(click_id="")
    drain()
    [request] = networks.requests
    assert len(facebook_events(request)) == 3
    bad.refresh_from_db()
    assert bad.status == Delivery.FAILED and "no user data at all" in bad.last_error


def test_tiktok_partial_success_retries_just_the_events_it_names(spot, networks):
    pixel = pixel_of(spot, "tiktok")
    due(spot, pixel, 5)
    failed = [{"index": 1, "message": "invalid ttclid"}, {"index": 3, "message": "bad value"}]
    answer = {"code": 20001, "message": "Partial success", "data": {"failed_events": failed}}
    networks.reply(200, json.dumps(answer))
    batch.send_due()
    [request] = networks.requests
    ids = [e["event_id"] for e in json.loads(request.body)["data"]]
    by_id = {str(d.pk): d for d in Delivery.objects.all()}
    assert [by_id[i].status for i in ids] == [
        "success",
        "pending",
        "success",
        "pending",
        "success",
    ]
    assert "invalid ttclid" in by_id[ids[1]].last_error
    assert "bad value" in by_id[ids[3]].last_error
    assert by_id[ids[1]].next_attempt > timezone.now()  # on its own schedule
    assert DeliveryAttempt.objects.count() == 5
    assert not DeliveryAttempt.objects.get(delivery_id=ids[1]).success


def test_tiktok_refusing_the_batch_retries_each_of_its_events(spot, networks):
    pixel = pixel_of(spot, "tiktok")
    due(spot, pixel, 3)
    networks.reply(200, json.dumps({"code": 40001, "message": "Invalid access token"}))
    batch.send_due()
    rows = Delivery.objects.all()
    assert {d.status for d in rows} == {"pending"}
    assert all("TikTok code 40001: Invalid access token" in d.last_error for d in rows)
    assert all(d.attempts == 1 for d in rows)


def test_a_meta_error_naming_an_event_says_which_and_retries_all(spot, networks):
    pixel = pixel_of(spot, "facebook")
    due(spot, pixel, 4)
    error = {
        "message": "Invalid parameter",
        "error_user_msg": "The event's value is invalid.",
        "error_data": {"event_index": 2},
    }
    networks.reply(400, json.dumps({"error": error}))
    batch.send_due()
    [request] = networks.requests
    ids = [e["event_id"] for e in facebook_events(request)]
    by_id = {str(d.pk): d for d in Delivery.objects.all()}
    assert all(d.status == "pending" for d in by_id.values())  # Meta took none of them
    assert "The event's value is invalid." in by_id[ids[2]].last_error
    assert "Refused with its batch for event 3" in by_id[ids[0]].last_error


def test_ga4_sends_25_events_of_one_client_a_request_each_with_its_time(spot, networks):
    pixel = pixel_of(spot, "google")
    ann, bob = (Client.objects.create(spot=spot, name=n) for n in ("Ann", "Bob"))
    due(spot, pixel, 30, client=ann)
    due(spot, pixel, 2, client=bob)
    drain()
    bodies = [json.loads(r.body) for r in networks.requests]
    assert sorted(len(b["events"]) for b in bodies) == [2, 5, 25]
    assert {b["client_id"] for b in bodies} == {ann.click_id, bob.click_id}
    assert all("timestamp_micros" in e for b in bodies for e in b["events"])
    assert {urlsplit(r.path).path for r in networks.requests} == {"/mp/collect"}
    assert Delivery.objects.filter(status="success").count() == 32


def test_ga4_validation_messages_fail_just_the_event_they_name(spot, networks):
    pixel = pixel_of(spot, "google")
    due(spot, pixel, 3)
    message = {
        "fieldPath": "events[0].params.currency",
        "description": "Currency is not valid.",
        "validationCode": "VALUE_INVALID",
    }
    networks.reply(200, json.dumps({"validationMessages": [message]}))
    batch.send_due()
    [request] = networks.requests
    assert len(json.loads(request.body)["events"]) == 3
    statuses = sorted(Delivery.objects.values_list("status", flat=True))
    assert statuses == ["pending", "success", "success"]
    assert "Currency is not valid." in Delivery.objects.get(status="pending").last_error


def test_one_due_event_is_sent_as_before(spot, networks):
    pixel = pixel_of(spot, "facebook")
    [d] = due(spot, pixel, 1)
    drain()
    [request] = networks.requests
    assert request.headers["X-Delivery-Id"] == str(d.pk)
    attempt = DeliveryAttempt.objects.get(delivery=d)
    # The whole request, its token masked, its event as it went.
    assert "TOKEN1" not in attempt.request_body
    fields = form_fields(attempt.request_body)
    assert fields["access_token"] != ["TOKEN1"]
    [event] = json.loads(fields["data"][0])
    assert event["event_id"] == (d.event_id or str(d.pk))


def test_the_rest_of_a_batch_keeps_each_conversion_in_order(spot, networks, settings):
    settings.POSTBACKS_SENDER_THREADS = 1  # a claim of 2: the others come with the pixel's batch
    pixel = pixel_of(spot, "facebook")
    deliveries = due(spot, pixel, 6)
    # An earlier event of the last one's conversion to the pixel is not done:
    # the later one waits for it, whichever claim reaches it.
    later = deliveries[-1]
    earlier = Delivery.objects.create(
        conversion=later.conversion,
        spot=spot,
        pixel=pixel,
        status=Delivery.PENDING,
        next_attempt=timezone.now() + datetime.timedelta(hours=1),
    )
    day_before = later.created - datetime.timedelta(days=1)
    Delivery.objects.filter(pk=earlier.pk).update(created=day_before)
    batch.send_due()
    sent = [e["event_id"] for r in networks.requests for e in facebook_events(r)]
    assert sorted(sent) == sorted(str(d.pk) for d in deliveries[:-1])
    later.refresh_from_db()
    assert later.status == Delivery.PENDING and later.attempts == 0

"""Unmatched postbacks replay themselves when their client appears."""

import datetime
import json

from django.utils import timezone

from crm.models import Client, Conversion
from postbacks.models import IncomingPostback
from tracker.models import Spot


def postback(client, spot, click_id, event="registration", **extra):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    return client.get(url, {"clickid": click_id, "tracker.event": event, **extra})


def register_by_bot(client, spot, **data):
    return client.post(
        "/api/clients",
        data=json.dumps({"user_id": 7, **data}),
        content_type="application/json",
        HTTP_X_API_KEY=spot.api_key,
    )


def test_a_postback_before_its_client_is_accepted_when_the_bot_registers_it(
    client, spot, django_capture_on_commit_callbacks
):
    answer = postback(client, spot, "trk-77")
    assert answer.status_code == 202
    assert "replayed by itself when that client appears (within 30 days)" in answer.json()["error"]
    row = IncomingPostback.objects.get()
    assert (row.status, row.click_id) == (IncomingPostback.UNMATCHED, "trk-77")

    with django_capture_on_commit_callbacks(execute=True):
        assert register_by_bot(client, spot, cl_id="trk-77").status_code in (200, 201)

    row.refresh_from_db()
    new = Client.objects.get(cl_id="trk-77")
    assert (row.status, row.client, row.click_id) == (IncomingPostback.ACCEPTED, new, "")
    assert f"client {new.pk} appeared" in row.warnings
    assert Conversion.objects.get(client=new).goal.token == "reg"


def test_waiting_postbacks_replay_oldest_first_and_once(
    client, spot, django_capture_on_commit_callbacks
):
    postback(client, spot, "trk-8", "registration")
    postback(client, spot, "trk-8", "sale", **{"tracker.cost": "10", "tracker.tid": "t1"})
    spot.refresh_from_db()  # as a click or the bot API read it
    with django_capture_on_commit_callbacks(execute=True):
        lead = Client.objects.create(spot=spot, cl_id="trk-8")
    goals = list(Conversion.objects.filter(client=lead).order_by("id").values_list("goal__token"))
    assert goals == [("reg",), ("dep",)]
    assert set(IncomingPostback.objects.values_list("status", flat=True)) == {"accepted"}
    with django_capture_on_commit_callbacks(execute=True):
        lead.save()  # saved again: nothing waits any more
    assert Conversion.objects.filter(client=lead).count() == 2


def test_a_client_that_gets_the_tracker_click_id_later_is_matched(
    client, spot, django_capture_on_commit_callbacks
):
    lead = Client.objects.create(spot=spot)
    postback(client, spot, "trk-late")
    lead = Client.objects.get(pk=lead.pk)  # as the admin reads it
    with django_capture_on_commit_callbacks(execute=True):
        lead.cl_id = "trk-late"
        lead.save(update_fields=["cl_id"])
    assert IncomingPostback.objects.get().status == IncomingPostback.ACCEPTED


def test_our_own_click_id_matches_too(client, spot, django_capture_on_commit_callbacks):
    postback(client, spot, "0123456789abcdef0123456789abcdef")
    spot.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        Client.objects.create(spot=spot, click_id="0123456789abcdef0123456789abcdef")
    assert IncomingPostback.objects.get().status == IncomingPostback.ACCEPTED


def test_past_the_look_back_window_a_postback_waits_for_a_person(
    client, spot, settings, django_capture_on_commit_callbacks
):
    postback(client, spot, "trk-old")
    old = timezone.now() - datetime.timedelta(days=settings.POSTBACKS_UNMATCHED_LOOKBACK_DAYS + 1)
    IncomingPostback.objects.update(received=old)
    spot.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        Client.objects.create(spot=spot, cl_id="trk-old")
    assert IncomingPostback.objects.get().status == IncomingPostback.UNMATCHED


def test_another_spot_s_client_does_not_take_the_postback(
    client, spot, django_capture_on_commit_callbacks
):
    postback(client, spot, "trk-x")
    other = Spot.objects.create(name="Other", slug="other", unmatched_until=spot_until(spot))
    with django_capture_on_commit_callbacks(execute=True):
        Client.objects.create(spot=other, cl_id="trk-x")
    assert IncomingPostback.objects.get().status == IncomingPostback.UNMATCHED


def spot_until(spot):
    spot.refresh_from_db()
    return spot.unmatched_until


def test_a_spot_without_waiting_postbacks_looks_for_none(spot):
    assert spot.unmatched_until is None  # so its clicks make no extra query (test_query_counts)

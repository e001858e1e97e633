"""A spot's ad-network pixels get each network's documented request."""

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from postbacks.delivery.fanout import accept
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def networks(settings, receiver):
    settings.POSTBACKS_PIXEL_URLS = {
        n: receiver.url for n in ("facebook", "tiktok", "google", "yandex")
    }
    return receiver


def deposit(spot, lead, network, event, **pixel):
    goal = spot.goals.get(token="dep")
    setattr(goal, f"{network}_event", event)
    goal.save()
    Pixel.objects.create(spot=spot, network=network, **pixel)
    _, _, [delivery] = accept(lead, "dep", amount=25, currency="EUR", tid="t-9")
    drain()
    return delivery


def test_facebook_gets_a_conversions_api_event(spot, lead, networks):
    d = deposit(spot, lead, "facebook", "Purchase", pixel_id="123", access_token="TOK")
    [got] = networks.wait_for(1)
    assert got.method == "POST" and got.path == "/v18.0/123/events"
    form = form_fields(got.body)
    assert form["access_token"] == ["TOK"]
    [event] = json.loads(form["data"][0])
    assert event["event_name"] == "Purchase" and event["action_source"] == "website"
    d.refresh_from_db()
    assert event["event_id"] == d.event_id == f"{d.conversion_id}-0"
    assert event["user_data"]["external_id"] == hashlib.sha256(lead.click_id.encode()).hexdigest()
    assert event["custom_data"] == {"value": 25.0, "currency": "EUR"}


def test_tiktok_gets_an_events_api_event(spot, lead, networks):
    deposit(spot, lead, "tiktok", "CompletePayment", pixel_id="TT1", access_token="TOK")
    [got] = networks.wait_for(1)
    assert got.path == "/open_api/v1.3/event/track/" and got.headers["Access-Token"] == "TOK"
    payload = json.loads(got.body)
    assert payload["event_source_id"] == "TT1"
    assert payload["data"][0]["event"] == "CompletePayment"
    assert payload["data"][0]["properties"] == {"value": 25.0, "currency": "EUR"}


def test_google_analytics_gets_a_measurement_protocol_event(spot, lead, networks):
    deposit(spot, lead, "google", "purchase", pixel_id="G-1", access_token="SECRET")
    [got] = networks.wait_for(1)
    url = urlsplit(got.path)
    assert url.path == "/mp/collect"
    assert parse_qs(url.query) == {"measurement_id": ["G-1"], "api_secret": ["SECRET"]}
    payload = json.loads(got.body)
    assert payload["client_id"] == lead.click_id
    assert payload["events"] == [
        {"name": "purchase", "params": {"value": 25.0, "currency": "EUR", "transaction_id": "t-9"}}
    ]


def test_yandex_metrica_gets_an_offline_conversions_csv(spot, lead, networks):
    # No Metrica id or yclid came with this lead: it is matched as the site's user.
    deposit(spot, lead, "yandex", "deposit", pixel_id="777", access_token="OAUTH")
    [got] = networks.wait_for(1)
    assert (
        got.path == "/management/v1/counter/777/offline_conversions/upload?client_id_type=USER_ID"
    )
    assert got.headers["Authorization"] == "OAuth OAUTH"
    assert got.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = got.body.decode()
    assert "UserId,Target,DateTime,Price,Currency\n" in body
    assert f"{lead.click_id},deposit," in body and ",25.00,EUR" in body


def test_a_goal_without_an_event_name_sends_nothing_to_the_pixel(spot, lead, networks):
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    spot.goals.filter(token="reg").update(facebook_event="")
    _, _, deliveries = accept(lead, "reg")
    assert deliveries == []

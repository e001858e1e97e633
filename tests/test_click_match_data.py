"""What ad networks match on: a click's browser data is stored and sent by the
pixels as each network's server API expects, never faked when unknown, and
seed 001's macro names paste and send as written (issue 10, points 4 and 5)."""

import hashlib
import json

import pytest

from crm.models import Client
from postbacks.delivery.fanout import accept
from postbacks.models import OutgoingPostback
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"


@pytest.fixture
def networks(settings, receiver, spot):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.target_url = "https://t.me/casino_bot?start={{tracker.clickid}}"
    spot.save()
    return receiver


def click(client, query, settings, **headers):
    settings.PROXY_HOPS = 1
    response = client.get(
        f"/go/casino-bot?{query}",
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7",
        HTTP_USER_AGENT=UA,
        HTTP_REFERER="https://land.example.com/offer?x=1",
        **headers,
    )
    assert response.status_code == 302
    drain()  # the workers settle the click (its lead event: no pixel wants it yet)
    return Client.objects.get()


def pixel_request(spot, lead, receiver, network, **goal_events):
    goal = spot.goals.get(token="dep")
    setattr(goal, f"{network}_event", goal_events.get("event", "Purchase"))
    goal.save()
    Pixel.objects.create(spot=spot, network=network, pixel_id="P1", access_token="TOK")
    accept(lead, "dep", amount=25, currency="EUR")
    drain()
    [got] = receiver.wait_for(1)
    return got


def test_a_click_stores_the_browser_its_ad_click_ids_and_cookies(client, networks, settings):
    client.cookies["_fbp"] = "fb.1.1700000000000.111"
    client.cookies["_ga"] = "GA1.1.1234567890.1700000000"
    client.cookies["_ym_uid"] = "cookie-loses"
    lead = click(client, "fbclid=F1&ttclid=T1&gclid=G1&yclid=Y1&_ym_uid=1700000000777", settings)
    assert lead.ip == "198.51.100.7"  # one proxy hop: the entry it appended
    assert lead.user_agent == UA and lead.page_url == "https://land.example.com/offer?x=1"
    assert (lead.fbclid, lead.ttclid, lead.gclid, lead.yclid) == ("F1", "T1", "G1", "Y1")
    assert lead.fbp == "fb.1.1700000000000.111" and lead.ga == "GA1.1.1234567890.1700000000"
    assert lead.ym_uid == "1700000000777"  # the link's value wins over the cookie
    assert lead.params["fbclid"] == "F1"  # {params__fbclid} keeps working
    # No _fbc cookie came: built from fbclid and the click time, as Meta's pixel does.
    assert lead.facebook_fbc == f"fb.1.{int(lead.created.timestamp() * 1000)}.F1"


def test_facebook_gets_full_user_data_and_the_page(client, networks, settings, spot):
    lead = click(client, "fbclid=F1", settings)
    got = pixel_request(spot, lead, networks, "facebook")
    [event] = json.loads(form_fields(got.body)["data"][0])
    assert event["user_data"] == {
        "external_id": hashlib.sha256(lead.click_id.encode()).hexdigest(),
        "client_ip_address": "198.51.100.7",
        "client_user_agent": UA,
        "fbc": lead.facebook_fbc,
    }  # no fbp: none was given, and none is made up
    assert event["event_source_url"] == "https://land.example.com/offer?x=1"
    assert event["action_source"] == "website"


def test_a_lead_with_nothing_known_sends_only_what_is_known(networks, spot):
    lead = Client.objects.create(spot=spot, advert_pixel="px")
    got = pixel_request(spot, lead, networks, "facebook")
    [event] = json.loads(form_fields(got.body)["data"][0])
    assert set(event["user_data"]) == {"external_id"}
    assert event["event_source_url"] == spot.target_url  # the spot's own page


def test_tiktok_gets_ttclid_ip_and_user_agent(client, networks, settings, spot):
    lead = click(client, "ttclid=T1", settings)
    got = pixel_request(spot, lead, networks, "tiktok", event="CompletePayment")
    [event] = json.loads(got.body)["data"]
    assert event["user"] == {
        "external_id": hashlib.sha256(lead.click_id.encode()).hexdigest(),
        "ttclid": "T1",
        "ip": "198.51.100.7",
        "user_agent": UA,
    }
    assert event["page"] == {"url": "https://land.example.com/offer?x=1"}


def test_ga4_gets_the_browsers_client_id_from_the_ga_cookie(client, networks, settings, spot):
    client.cookies["_ga"] = "GA1.1.1234567890.1700000000"
    lead = click(client, "gclid=G1", settings)
    got = pixel_request(spot, lead, networks, "google", event="purchase")
    assert json.loads(got.body)["client_id"] == "1234567890.1700000000"


@pytest.mark.parametrize(
    ("query", "kind", "line"),
    [("_ym_uid=1700000000777", "CLIENT_ID", "ClientId"), ("yclid=555", "YCLID", "Yclid")],
)
def test_yandex_matches_on_metrica_id_or_yclid(client, networks, settings, spot, query, kind, line):
    lead = click(client, query, settings)
    got = pixel_request(spot, lead, networks, "yandex", event="deposit")
    assert got.path.endswith(f"client_id_type={kind}")
    value = query.split("=")[1]
    assert f"{line},Target,DateTime,Price,Currency\n{value},deposit," in got.body.decode()


def test_the_bot_api_accepts_the_same_data(client, spot):
    body = {
        "user_id": 42,
        "ip": "2001:db8::1",
        "user_agent": UA,
        "fbclid": "F1",
        "fbp": "fb.1.1.2",
        "ga": "GA1.1.5.6",
        "ttclid": "T1",
    }
    headers = {"HTTP_X_API_KEY": spot.api_key}
    answer = client.post("/api/clients", body, content_type="application/json", **headers)
    assert answer.status_code == 201, answer.content
    lead = Client.objects.get()
    assert (lead.ip, lead.user_agent, lead.fbclid, lead.fbp, lead.ga, lead.ttclid) == (
        "2001:db8::1",
        UA,
        "F1",
        "fb.1.1.2",
        "GA1.1.5.6",
        "T1",
    )
    body = {"user_id": 43, "ip": "not-an-ip"}
    answer = client.post("/api/clients", body, content_type="application/json", **headers)
    assert answer.status_code == 400 and "ip is not an IP address" in answer.json()["error"]


def test_seed_001s_facebook_example_pastes_and_sends_as_written(
    client, networks, settings, spot, admin_client
):
    # The seed's own example, its PIXEL and TOKEN filled in, pasted as the URL.
    url = (
        networks.url + "/v18.0/PIXEL/events|POST|access_token=TOKEN&data=[{"
        '"action_source":"website","event_name":"Lead","event_time":{now},"user_data":'
        '{"external_id":"{id}","client_ip_address":"{ip}","client_user_agent":"{ua}",'
        '"fbc":"fb.1.{now}.{adid}","fbp":"fb.1.{now}.{id}"}}]'
    )
    form = {"spot": spot.pk, "name": "FB", "url": url, "method": "GET", "body_format": "none"}
    form |= {"timeout": "10", "success_status": "200-299", "enabled": "on"}
    form |= {"send_approved": "on", "send_pending": "on", "send_rejected": "on"}
    answer = admin_client.post("/admin/postbacks/outgoingpostback/add/", form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    lead = click(client, "advert__ad_id=AD7", settings)
    accept(lead, "reg")
    drain()
    [got] = networks.wait_for(1)
    assert got.path == "/v18.0/PIXEL/events"
    [event] = json.loads(form_fields(got.body)["data"][0])
    assert event["user_data"]["external_id"] == str(lead.pk)
    assert event["user_data"]["client_ip_address"] == "198.51.100.7"
    assert event["user_data"]["client_user_agent"] == UA
    assert event["user_data"]["fbc"].endswith(".AD7")
    assert OutgoingPostback.objects.get().url == url

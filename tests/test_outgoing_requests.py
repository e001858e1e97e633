"""Outgoing postbacks reach a real local receiver with the exact bytes expected."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from crm.models import Client, CustomField, CustomFieldValue
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain, form_fields

pytestmark = pytest.mark.usefixtures("outgoing")

TRICKY = 'a&b=c#d?e/f"g<h>i%j+k l\r\nm ü€'


def make_postback(spot, **kwargs):
    kwargs.setdefault("name", "Partner")
    return OutgoingPostback.objects.create(spot=spot, **kwargs)


def tricky_lead(spot):
    return Client.objects.create(
        spot=spot, name=TRICKY, cl_id="trk-1", advert_campaign_id="c1", params={"uid": TRICKY}
    )


def send_one(spot, client, receiver, event="reg", **kwargs):
    _, _, deliveries = accept(client, event, **kwargs)
    drain()
    return receiver.wait_for(len(deliveries))


def test_a_get_postback_percent_encodes_every_value_in_the_url(spot, receiver):
    make_postback(spot, url=receiver.url + "/pb?name={name}&uid={params__uid}&c={click_id}")
    lead = tricky_lead(spot)
    [got] = send_one(spot, lead, receiver)
    assert got.method == "GET" and got.body == b""
    query = parse_qs(urlsplit(got.path).query)
    assert query == {"name": [TRICKY], "uid": [TRICKY], "c": [lead.click_id]}
    assert "%0D%0A" in got.path and "%23" in got.path and " " not in got.path


def test_the_inline_post_form_sends_a_form_encoded_body(spot, receiver):
    make_postback(spot, url=receiver.url + "/pb?code=abc|POST|click={click_id}&name={name}")
    lead = tricky_lead(spot)
    [got] = send_one(spot, lead, receiver)
    assert got.method == "POST" and got.path == "/pb?code=abc"
    assert got.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert form_fields(got.body) == {"click": [lead.click_id], "name": [TRICKY]}


def test_the_inline_json_form_sends_json_with_escaped_values(spot, receiver):
    make_postback(spot, url=receiver.url + '/pb|JSON|{"foo":"bar","click":"{name}"}')
    [got] = send_one(spot, tricky_lead(spot), receiver)
    assert got.method == "POST" and got.path == "/pb"
    assert got.headers["Content-Type"].startswith("application/json")
    assert json.loads(got.body) == {"foo": "bar", "click": TRICKY}


def test_a_post_with_a_json_body_field_and_headers(spot, receiver):
    make_postback(
        spot,
        url=receiver.url + "/json",
        method="POST",
        body_format="json",
        body='{"name": "{name}", "sum": {sum}, "tid": "{tid}"}',
        headers="X-Api-Key: secret\nX-Client: {name}",
    )
    [got] = send_one(spot, tricky_lead(spot), receiver, event="dep", amount=12, tid="t-1")
    assert json.loads(got.body) == {"name": TRICKY, "sum": 12.0, "tid": "t-1"}
    assert got.headers["X-Api-Key"] == "secret"
    # CR/LF cannot start a new header; non-latin-1 letters become '?'.
    assert got.headers["X-Client"] == 'a&b=c#d?e/f"g<h>i%j+k l m ü?'


def test_a_post_with_an_xml_body_escapes_markup(spot, receiver):
    make_postback(
        spot,
        url=receiver.url + "/xml",
        method="POST",
        body_format="xml",
        body='<event name="{name}"><geo>{geo}</geo></event>',
    )
    lead = tricky_lead(spot)
    [got] = send_one(spot, lead, receiver)
    assert got.headers["Content-Type"].startswith("application/xml")
    name = "a&amp;b=c#d?e/f&quot;g&lt;h&gt;i%j+k l\r\nm ü€"
    assert got.body.decode() == f'<event name="{name}"><geo></geo></event>'


def test_a_post_with_a_form_body_field(spot, receiver):
    make_postback(
        spot, url=receiver.url + "/form", method="POST", body_format="form", body="n={name}&x=1"
    )
    [got] = send_one(spot, tricky_lead(spot), receiver)
    assert form_fields(got.body) == {"n": [TRICKY], "x": ["1"]}


def test_a_post_without_a_body_sends_none(spot, receiver):
    make_postback(spot, url=receiver.url + "/empty?c={cl_id}", method="POST")
    [got] = send_one(spot, tricky_lead(spot), receiver)
    assert got.method == "POST" and got.body == b"" and got.path == "/empty?c=trk-1"


def test_a_value_holding_a_macro_is_not_expanded_again(spot, receiver):
    make_postback(spot, url=receiver.url + "/pb?n={name}")
    lead = Client.objects.create(spot=spot, name="{click_id}", advert_pixel="p")
    [got] = send_one(spot, lead, receiver)
    assert parse_qs(urlsplit(got.path).query) == {"n": ["{click_id}"]}


def test_fields_and_advert_macros_are_filled(spot, receiver):
    field = CustomField.objects.create(spot=spot, key="last_deposit")
    lead = tricky_lead(spot)
    CustomFieldValue.objects.create(client=lead, field=field, value="55")
    make_postback(spot, url=receiver.url + "/pb?d={fields__last_deposit}&c={advert__campaign_id}")
    [got] = send_one(spot, lead, receiver)
    assert parse_qs(urlsplit(got.path).query) == {"d": ["55"], "c": ["c1"]}


def test_the_facebook_example_of_seed_001_is_sent_as_written(spot, receiver):
    template = (
        receiver.url + "/v18.0/PIXEL/events|POST|access_token=TOKEN&data=[{"
        '"action_source":"website","event_name":"Lead","event_time":{now},'
        '"user_data":{"external_id":"{click_id}","fbc":"fb.1.{now}.{advert__ad_id}"}}]'
    )
    make_postback(spot, url=template)
    lead = Client.objects.create(spot=spot, advert_ad_id="ad 7")
    [got] = send_one(spot, lead, receiver)
    assert got.method == "POST" and got.path == "/v18.0/PIXEL/events"
    form = form_fields(got.body)
    assert form["access_token"] == ["TOKEN"]
    [event] = json.loads(form["data"][0])
    assert event["event_name"] == "Lead" and isinstance(event["event_time"], int)
    assert event["user_data"]["external_id"] == lead.click_id
    assert event["user_data"]["fbc"] == f"fb.1.{event['event_time']}.ad 7"


def test_the_delivery_id_travels_in_a_header(spot, receiver, lead):
    make_postback(spot, url=receiver.url + "/pb")
    [got] = send_one(spot, lead, receiver)
    delivery = Delivery.objects.get()
    assert got.headers["X-Delivery-Id"] == str(delivery.pk)
    assert delivery.status == Delivery.SUCCESS


def test_a_goal_external_postback_is_sent(spot, receiver, lead):
    goal = spot.goals.get(token="dep")
    goal.external_postback = receiver.url + "/ext?a={action}&s={sum}&cl={cl_id}"
    goal.save()
    [got] = send_one(spot, lead, receiver, event="dep", amount=10)
    assert got.path == "/ext?a=dep&s=10.00&cl=trk-1"


def test_unknown_macros_are_refused_on_save_with_their_names(spot):
    pb = OutgoingPostback(
        spot=spot, name="x", url="https://a.example/?c={clik}", body="{oops}", headers="X: {y}"
    )
    with pytest.raises(ValidationError) as e:
        pb.full_clean()
    errors = e.value.message_dict
    assert "{clik}" in errors["url"][0]
    assert "{oops}" in errors["body"][0]
    assert "{y}" in errors["headers"][0]


def test_a_spot_may_have_five_outgoing_postbacks_by_default(spot, settings):
    for n in range(5):
        make_postback(spot, name=f"p{n}", url="https://a.example/")
    sixth = OutgoingPostback(spot=spot, name="p6", url="https://a.example/")
    with pytest.raises(ValidationError) as e:
        sixth.full_clean()
    assert "at most 5" in str(e.value)
    settings.POSTBACKS_MAX_PER_SPOT = 6
    sixth.full_clean()

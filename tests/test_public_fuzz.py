"""No 500 from bad input on any public endpoint, and every request to a spot's
incoming URL stored raw first.

The public endpoints are the incoming postback URL, the click link /go/<slug>
and the bots' POST /api/clients. The examples are the requests that once gave
a 500 on PostgreSQL (it refuses NUL in text and jsonb and cannot encode a lone
surrogate, so run this file on the PostgreSQL pass too); the hypothesis tests
throw every class of odd input at all three.
"""

import json
from urllib.parse import quote

import pytest
from django.test import Client as DjangoClient
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import ADVERT_KEYS, Client, CustomField, CustomFieldValue
from crm.values import parse_decimal
from postbacks.models import IncomingPostback
from tracker.models import Spot

MILLION_DIGITS = "9" * 1_000_001
UPLOAD_LIMIT = 300_000  # small enough for quick examples, over the 64 KiB stored cap
WRONG_METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS"]


@pytest.fixture
def landing(spot):
    spot.target_url = "https://land.example.com/offer?c={{tracker.clickid}}"
    spot.save()
    return spot


def incoming_url(spot, query=""):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback" + (f"?{query}" if query else "")


def post_bot(client, spot, body, key=None):
    return client.post(
        "/api/clients",
        data=body,
        content_type="application/json",
        HTTP_X_API_KEY=spot.api_key if key is None else key,
    )


def assert_json_error(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["ok"] is False and body["error"]
    return body["error"]


# -- the operator's 500s, one by one -------------------------------------------


def test_a_nul_in_a_click_parameter_is_stored_as_a_replacement_character(client, landing):
    response = client.get("/go/casino-bot?utm_source=a%00b&advert__campaign_id=c%001&%00x=1")
    assert response.status_code == 302
    lead = Client.objects.get()
    assert lead.advert_campaign_id == "c\ufffd1"
    assert lead.params == {"utm_source": "a\ufffdb", "\ufffdx": "1"}


def test_a_nul_escape_in_a_bot_json_string_is_stored_as_a_replacement_character(client, spot):
    body = '{"user_id": 1, "name": "a\\u0000b", "params": {"k\\u0000": ["v\\u0000"]}}'
    assert post_bot(client, spot, body).status_code == 201
    lead = Client.objects.get()
    assert lead.name == "a\ufffdb"
    assert lead.params == {"k\ufffd": ["v\ufffd"]}


def test_json_nested_100000_deep_to_the_bot_api_is_a_400(client, spot):
    deep = "[" * 100_000 + "]" * 100_000
    for body in (deep, '{"user_id": 1, "params": {"a": ' + deep + "}}"):
        error = assert_json_error(post_bot(client, spot, body), 400)
        assert error == "The JSON body is nested deeper than 20 levels."
    assert not Client.objects.exists()


def test_json_nested_100000_deep_to_the_incoming_url_is_a_400_and_stored(client, spot, lead):
    body = '{"clickid": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(incoming_url(spot), data=body, content_type="application/json")
    assert assert_json_error(response, 400) == "The JSON body is nested deeper than 20 levels."
    assert IncomingPostback.objects.get().body == body[: 64 * 1024]


def test_a_lone_surrogate_in_a_bot_json_string_is_stored_as_a_replacement_character(client, spot):
    body = '{"user_id": 1, "username": "\\ud800x", "params": {"\\udfff": "\\ud83d"}}'
    assert post_bot(client, spot, body).status_code == 201
    lead = Client.objects.get()
    assert lead.username == "\ufffdx"
    assert lead.params == {"\ufffd": "\ufffd"}


def test_a_lone_surrogate_in_an_incoming_json_body_is_processed_cleaned(client, spot, lead):
    body = json.dumps({"clickid": lead.click_id, "tracker.event": "reg", "tracker.tid": "\ud800"})
    response = client.post(incoming_url(spot), data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert lead.conversions.get().tid == "\ufffd"


@pytest.mark.parametrize("kind", [CustomField.NUMBER, CustomField.MONEY])
def test_a_million_digit_value_for_a_number_or_money_field_is_a_warning(client, spot, lead, kind):
    CustomField.objects.create(spot=spot, key="big", type=kind)
    query = f"clickid={lead.click_id}&tracker.event=reg&fields.big={MILLION_DIGITS}"
    response = client.get(incoming_url(spot, query))
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert warning.startswith("fields.big: '9999") and "over 100 characters" in warning
    assert len(warning) < 200
    assert not CustomFieldValue.objects.exists()
    assert IncomingPostback.objects.get().status == IncomingPostback.ACCEPTED


def test_a_million_digit_number_is_refused_before_it_is_parsed():
    with pytest.raises(ValueError, match="over 100 characters"):
        parse_decimal(MILLION_DIGITS)


@pytest.mark.parametrize("method", WRONG_METHODS)
def test_a_wrong_method_on_the_incoming_url_is_stored_and_a_json_405(client, spot, method):
    response = client.generic(method, incoming_url(spot, "clickid=x&tracker.event=reg"))
    assert assert_json_error(response, 405) == f"Use GET or POST, not {method}."
    assert response["Allow"] == "GET, POST"
    assert IncomingPostback.objects.get().method == method


@pytest.mark.parametrize("method", [*WRONG_METHODS, "POST", "HEAD"])
def test_a_wrong_method_on_the_click_link_is_a_json_405_and_makes_no_client(landing, method):
    # CSRF checked as a real server does (the test client skips it by default).
    client = DjangoClient(enforce_csrf_checks=True)
    response = client.generic(method, "/go/casino-bot?utm_source=fb")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    if method != "HEAD":  # a HEAD answer has no body
        assert assert_json_error(response, 405) == f"Use GET, not {method}."
    assert not Client.objects.exists()


@pytest.mark.parametrize("method", [*WRONG_METHODS, "GET"])
def test_a_wrong_method_on_the_bot_api_is_a_json_405(client, spot, method):
    response = client.generic(method, "/api/clients", HTTP_X_API_KEY=spot.api_key)
    assert assert_json_error(response, 405) == f"Use POST, not {method}."
    assert response["Allow"] == "POST"


def test_invalid_utf8_and_broken_escapes_in_a_click_are_stored_replaced(client, landing):
    query = b"utm_source=%ff%fe&x=%zz&y=\xff&z=%&w=%ed%a0%80"
    response = client.get("/go/casino-bot", QUERY_STRING=query.decode("latin-1"))
    assert response.status_code == 302
    params = Client.objects.get().params
    assert params["x"] == "%zz" and params["z"] == "%"
    assert params["utm_source"] == "\ufffd\ufffd"
    assert params["y"] == "\xff"  # Django reads a query string that is not UTF-8 as latin-1
    assert set(params["w"]) == {"\ufffd"}


def test_invalid_utf8_in_a_bot_body_is_a_400(client, spot):
    response = post_bot(client, spot, b'{"user_id": 1, "name": "\xff\xfe\xfd"}')
    assert assert_json_error(response, 400) == "The body is not valid JSON."


def test_invalid_utf8_and_escapes_to_the_incoming_url_are_stored_visible(client, spot, lead):
    query = f"clickid={lead.click_id}&tracker.event=reg&x=%ff%zz&y=".encode() + b"\xff\x00"
    response = client.get(incoming_url(spot), QUERY_STRING=query.decode("latin-1"))
    assert response.status_code == 200
    row = IncomingPostback.objects.get()
    assert row.query.endswith("x=%ff%zz&y=\\xff\ufffd")


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"user_id": 1e999999}', "The JSON body has the number 1e999999, which is out of range."),
        ('{"user_id": NaN}', "The JSON body has NaN, which is not a number"),
        ('{"user_id": 1, "params": {"x": Infinity}}', "The JSON body has Infinity, which"),
        ('{"user_id": 1, "params": {"x": -Infinity}}', "The JSON body has -Infinity, which"),
        ('{"user_id": 1, "params": {"x": ' + "9" * 5000 + "}}", "The JSON body has a number of"),
        ('{"user_id": 1, "name": 1' + "0" * 200 + ".5}", "The JSON body has a number of"),
        ('{"user_id": 99999999999999999999}', "user_id is out of range."),
        ('{"user_id": "' + "9" * 5000 + '"}', "user_id is required and must be an integer"),
        ('{"user_id": "\u00b2"}', "user_id is required and must be an integer"),
    ],
)
def test_absurd_numbers_to_the_bot_api_are_a_400_with_a_message(client, spot, body, message):
    assert assert_json_error(post_bot(client, spot, body), 400).startswith(message)
    assert not Client.objects.exists()


@pytest.mark.parametrize(
    "cost, message",
    [
        ("1e999999", "tracker.cost: '1e999999' is not a number"),
        ("NaN", "tracker.cost: 'NaN' is not a number"),
        ("Infinity", "tracker.cost: 'Infinity' is not a number"),
        ("-inf", "tracker.cost: '-inf' is not a number"),
        (MILLION_DIGITS, "tracker.cost: '9999"),
    ],
)
def test_absurd_numbers_to_the_incoming_url_are_a_400_with_a_message(
    client, spot, lead, cost, message
):
    query = f"clickid={lead.click_id}&tracker.event=sale&tracker.cost={cost}"
    assert assert_json_error(client.get(incoming_url(spot, query)), 400).startswith(message)
    assert IncomingPostback.objects.get().status == IncomingPostback.REJECTED


@pytest.mark.parametrize("literal", ["1e999999", "NaN", "-Infinity", "9" * 5000])
def test_absurd_json_numbers_to_the_incoming_url_are_a_400_with_a_message(
    client, spot, lead, literal
):
    body = f'{{"clickid": "{lead.click_id}", "tracker.event": "sale", "tracker.cost": {literal}}}'
    response = client.post(incoming_url(spot), data=body, content_type="application/json")
    assert assert_json_error(response, 400).startswith("The JSON body has ")
    assert IncomingPostback.objects.get().body == body


def test_more_than_a_thousand_click_parameters_are_a_json_400(client, landing):
    query = "&".join(f"p{i}=1" for i in range(1001))
    error = assert_json_error(client.get(f"/go/casino-bot?{query}"), 400)
    assert error == "Too many parameters (more than 100)."
    assert not Client.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_bot_body_over_the_upload_limit_is_a_json_413(client, spot):
    body = json.dumps({"user_id": 1, "name": "x" * 2000})
    assert assert_json_error(post_bot(client, spot, body), 413) == (
        "The body is over the upload limit."
    )


def test_a_nul_in_the_api_key_is_an_unknown_key(client, spot):
    response = post_bot(client, spot, '{"user_id": 1}', key="a\x00b")
    assert assert_json_error(response, 403) == "Unknown API key."


# -- hypothesis: every class of odd input at all three ---------------------------

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\ufeff", "\u200b"]
NUMBERS = [
    "1e999999",
    "-1e999999",
    "1e-999999",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "9" * 400,
    "0." + "0" * 200 + "1",
    "0x10",
    "1_000",
    "\u0661\u0662",
    "\u00b2",
    "12.50",
    "12,50",
    "-0",
]
ESCAPES = ["%", "%z", "%zz", "%00", "%ff", "%c3%28", "%ed%a0%80", "%f4%90%80%80", "%%", "%u0041"]
HUGE = ["a" * 70_000, "%" * 70_000, MILLION_DIGITS]

odd_text = st.one_of(
    st.text(max_size=20),
    st.text(st.sampled_from(["\x00", *SURROGATES, *CONTROL, "é", "&", "=", "%", "{"]), max_size=12),
    st.sampled_from(NUMBERS),
    st.sampled_from(HUGE),
)


def raw_piece():
    """Bytes as they may stand in a query string: quoted (surrogates become
    invalid UTF-8), broken escapes, or raw bytes."""
    return st.one_of(
        odd_text.map(lambda t: quote(t, safe="", errors="surrogatepass").encode()),
        st.sampled_from(ESCAPES).map(str.encode),
        st.binary(max_size=12),
    )


def query_string(names):
    pairs = st.lists(st.tuples(names | raw_piece(), raw_piece()), max_size=6)
    return pairs.map(lambda ps: b"&".join(n + b"=" + v for n, v in ps))


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: json.dumps writes them as literals
    odd_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)
json_literal = st.one_of(
    json_value.map(json.dumps),  # escapes NUL and surrogates as \u0000 and \ud800
    st.sampled_from(["1e999999", "-1e999999", "1E400", "9" * 5000, "NaN", "-Infinity"]),
    st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
    st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
)


def json_object(keys):
    items = st.lists(st.tuples(keys | odd_text, json_literal), max_size=6)
    return items.map(lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in kv) + "}")


def encoded(text_strategy):
    encodings = st.sampled_from(["utf-8"] * 4 + ["utf-16", "latin-1", "cp1251"])
    return st.tuples(text_strategy, encodings).map(
        lambda te: te[0].encode(te[1], errors="surrogatepass" if te[1] == "utf-8" else "replace")
    )


methods = st.sampled_from(["GET"] * 4 + ["POST"] * 4 + [*WRONG_METHODS, "HEAD"])
content_types = st.sampled_from(
    ["", "application/json", "application/x-www-form-urlencoded", "text/plain", "\x00;;"]
)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_answer_is_not_5xx_and_json_on_4xx(response, method):
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400 and method != "HEAD":
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert body["ok"] is False and body["error"]


incoming_names = st.sampled_from(
    ["clickid", "tracker.event", "goal", "tracker.cost", "sum", "tracker.currency",
     "tracker.tid", "status", "playerid", "partner", "fields.n", "fields.m", "fields.t",
     "fields.d", "fields.b"]
).map(str.encode)  # fmt: skip
field_values = st.one_of(st.sampled_from(NUMBERS + HUGE).map(str.encode), raw_piece())
incoming_bodies = st.one_of(
    st.just(b""),
    query_string(incoming_names),
    encoded(json_object(incoming_names.map(bytes.decode))),
    encoded(json_literal),
    st.binary(max_size=200),
)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=UPLOAD_LIMIT)
@FUZZ
@given(
    method=methods,
    token=st.sampled_from(["spot"] * 6 + ["junk", "%00", "%ed%a0%80", "%ff", "x" * 300]),
    with_event=st.booleans(),
    fields=st.lists(st.tuples(st.sampled_from("nmtdb"), field_values), max_size=3),
    query=query_string(incoming_names),
    body=incoming_bodies,
    content_type=content_types,
)
def test_the_incoming_url_stores_every_request_and_never_answers_5xx(
    client, spot, lead, method, token, with_event, fields, query, body, content_type
):
    for kind in ["number", "money", "text", "date", "boolean"]:
        CustomField.objects.get_or_create(spot=spot, key=kind[0], defaults={"type": kind})
    if with_event:  # a plausible postback with noise, so the deeper paths run too
        query = f"clickid={lead.click_id}&tracker.event=sale&".encode() + query
        query += b"".join(b"&fields." + k.encode() + b"=" + v for k, v in fields)
    token = spot.postback_token if token == "spot" else token
    before = IncomingPostback.objects.count()

    response = client.generic(
        method,
        f"/api/postbacks/{token}/tracker-postback",
        data=body,
        content_type=content_type,
        QUERY_STRING=query.decode("latin-1"),
    )

    assert_answer_is_not_5xx_and_json_on_4xx(response, method)
    assert IncomingPostback.objects.count() == before + 1
    row = IncomingPostback.objects.latest("id")
    assert row.method == method and row.http_status == response.status_code
    if response.status_code == 405:
        assert response["Allow"] == "GET, POST"


click_names = st.sampled_from(
    [f"advert__{k}" for k in ADVERT_KEYS] + ["cl_id", "geo", "utm_source", "fbclid", "x"]
).map(str.encode)


@FUZZ
@given(
    method=methods,
    slug=st.sampled_from(["casino-bot"] * 6 + ["no-target", "nope"]),
    query=query_string(click_names),
    body=st.binary(max_size=50),
)
def test_the_click_link_never_answers_5xx(client, landing, method, slug, query, body):
    Spot.objects.get_or_create(slug="no-target", defaults={"name": "No target"})
    before = Client.objects.count()

    response = client.generic(
        method, f"/go/{slug}", data=body, QUERY_STRING=query.decode("latin-1")
    )

    assert_answer_is_not_5xx_and_json_on_4xx(response, method)
    made = Client.objects.count() - before
    if response.status_code == 302:
        lead = Client.objects.latest("id")
        assert made == 1 and response["Location"].endswith(lead.click_id)
    else:
        assert made == 0


bot_keys = st.sampled_from(["user_id", "username", "name", "geo", "cl_id", "advert", "params"])
user_ids = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1", "42", '"42"', '"-7"', '"\u00b2"', "1e999999", "NaN", "9" * 5000]),
    json_literal,
)
adverts = st.dictionaries(st.sampled_from([*ADVERT_KEYS, "colour"]), json_scalar, max_size=3)
bot_bodies = st.one_of(
    st.tuples(user_ids, json_literal, adverts, json_literal).map(
        lambda t: (
            f'{{"user_id": {t[0]}, "name": {t[1]}, "advert": {json.dumps(t[2])}, "params": {t[3]}}}'
        )
    ),
    st.tuples(json_object(bot_keys), user_ids).map(
        lambda t: t[0][:-1] + (", " if t[0] != "{}" else "") + f'"user_id": {t[1]}}}'
    ),
    json_literal,
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(
    method=methods,
    body=encoded(bot_bodies),
    content_type=content_types,
    key=st.sampled_from(["spot"] * 8 + ["", "wrong", "a\x00b", "\xff"]),
)
def test_the_bot_api_never_answers_5xx(client, spot, method, body, content_type, key):
    response = client.generic(
        method,
        "/api/clients",
        data=body,
        content_type=content_type,
        HTTP_X_API_KEY=spot.api_key if key == "spot" else key,
    )

    assert_answer_is_not_5xx_and_json_on_4xx(response, method)
    if response.status_code in (200, 201):
        stored = Client.objects.get(pk=response.json()["id"])
        assert stored.click_id == response.json()["click_id"]

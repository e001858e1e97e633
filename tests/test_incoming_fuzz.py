"""Whatever arrives, the endpoint answers 2xx or 4xx and keeps the raw request."""

import json

from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import CustomField
from postbacks.models import IncomingPostback

CAP = 64 * 1024
UPLOAD_LIMIT = 200_000
NAMES = [
    "clickid",
    "tracker.event",
    "goal",
    "tracker.cost",
    "sum",
    "tracker.currency",
    "tracker.tid",
    "status",
    "playerid",
    "partner",
    "fields.last_deposit",
    "fields.user_id",
    "fields.",
    "x",
]
EVENTS = ["registration", "sale", "resale", "first_deposit", "dep", "redep", "reg", "payout"]
ENCODINGS = ["utf-8", "latin-1", "cp1251", "utf-16"]
CONTENT_TYPES = [
    "",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=cp1251",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/xml",
    "\x00garbage/;;;",
]

oversized = st.builds(lambda n, c: c * n, st.integers(60_000, 70_000), st.sampled_from("a%é9"))
value = st.one_of(
    st.text(max_size=40),
    st.sampled_from(EVENTS),
    st.sampled_from(["12.50", "12,50", "-1", "1e9", "9" * 30, "NaN", "usd", "XXXX", ""]),
    st.sampled_from(["%", "%zz", "%00", "%ff%fe", "{", "&&", "==", "\ud800"]),
    oversized,
)
pairs = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=10), value), max_size=6)


def encode(text, encoding):
    return text.encode(encoding, errors="replace")


def as_query(items, lead, use_lead):
    items = ([("clickid", lead.click_id)] if use_lead else []) + items
    return "&".join(f"{k}={v}" for k, v in items)


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["pairs", "pairs", "pairs", "text", "bytes"]))
    if kind == "pairs":
        # Mostly a plausible postback with noise, so the deeper paths run too.
        event = draw(st.sampled_from(["tracker.event", "goal"])), draw(st.sampled_from(EVENTS))
        query = [event, *draw(pairs)] if draw(st.integers(0, 3)) else draw(pairs)
    elif kind == "text":
        query = draw(st.text(max_size=200) | oversized)
    else:
        query = draw(st.binary(max_size=200))
    body_kind = draw(st.sampled_from(["none", "pairs", "json", "bytes", "text"]))
    if body_kind == "json":
        body = json.dumps(
            draw(st.dictionaries(st.sampled_from(NAMES), value | st.integers() | st.none()))
        )
    elif body_kind == "pairs":
        body = draw(pairs)
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    else:
        body = draw(st.text(max_size=300)) if body_kind == "text" else ""
    return {
        "method": draw(st.sampled_from(["GET"] * 3 + ["POST"] * 3 + ["PUT", "PATCH"])),
        "query": query,
        "body": body,
        "use_lead": draw(st.sampled_from([True, True, True, False])),
        "encoding": draw(st.sampled_from(ENCODINGS)),
        "content_type": draw(st.sampled_from(CONTENT_TYPES)),
        "token": draw(st.sampled_from(["spot"] * 5 + ["junk"])),
    }


def to_bytes(part, lead, use_lead, encoding):
    if isinstance(part, list):
        part = as_query(part, lead, use_lead)
    return part if isinstance(part, bytes) else encode(part, encoding)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=UPLOAD_LIMIT)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=requests())
def test_every_answer_is_2xx_or_4xx_and_the_raw_request_is_stored(client, spot, lead, req):
    CustomField.objects.get_or_create(spot=spot, key="last_deposit", type=CustomField.MONEY)
    query = to_bytes(req["query"], lead, req["use_lead"], req["encoding"])
    body = to_bytes(req["body"], lead, False, req["encoding"])
    token = spot.postback_token if req["token"] == "spot" else "junk%20token"
    before = IncomingPostback.objects.count()

    response = client.generic(
        req["method"],
        f"/api/postbacks/{token}/tracker-postback",
        data=body,
        content_type=req["content_type"],
        QUERY_STRING=query.decode("latin-1"),
    )

    assert 200 <= response.status_code < 500, response.content[:500]
    assert IncomingPostback.objects.count() == before + 1
    row = IncomingPostback.objects.latest("id")
    expected_query = query.decode("utf-8", "backslashreplace").replace("\x00", "\ufffd")
    expected_body = body.decode("utf-8", "backslashreplace").replace("\x00", "\ufffd")
    assert row.query == expected_query[:CAP]
    if len(body) <= UPLOAD_LIMIT:
        assert row.body == expected_body[:CAP]
    else:
        assert response.status_code in (404, 405, 413) and "over the upload limit" in row.warnings
        assert expected_body.startswith(row.body[:1000])
    assert row.method == req["method"] and row.status != IncomingPostback.RECEIVED
    assert row.http_status == response.status_code
    if len(expected_query) > CAP:
        assert f"query cut to {CAP} of {len(expected_query)} characters" in row.warnings

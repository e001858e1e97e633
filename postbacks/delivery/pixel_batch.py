"""Pixel events sent as the ad networks want them: several in one request.

The batch pipeline (batch.py) claims due deliveries and sends each as one
request; the due events of one Facebook, TikTok or GA4 pixel go out together
instead, up to what the network takes in one request:

- Facebook Conversions API: up to 1,000 entries in `data`.
- TikTok Events API 2.0: up to 1,000 entries in `data`.
- GA4 Measurement Protocol: up to 25 events and a body under 130 kB, and all
  of one client (a request has one client_id), each with its own time.

Yandex Metrica's uploads go one by one, as before.

What holds, whatever the size of a batch:

1. Each event is checked before it joins a request (`invalid`): Meta refuses
   a whole batch for one bad event, so an invalid one fails alone, at once,
   with its reason, and the others go out.
2. An event older than its network accepts (`WINDOWS`: Meta 7 days, TikTok
   7 days, GA4 72 hours), by the delivery's own event time, is skipped with
   the reason, not sent.
3. Each delivery keeps its own attempt row. The row holds the batch's method,
   URL and headers (secrets masked), as body its own entry of the array
   (which event of how many in the request) and the batch's response: the
   request text of a thousand events is not stored a thousand times.
4. The answer is mapped back per event (`outcomes`): the entries a network
   names as failed (Meta's error_data.event_index, TikTok's partial success,
   GA4's validationMessages fieldPath `events[i]`) fail, the others succeed.
   Whatever fails is retried on its own delivery's schedule (at least once);
   a whole batch that failed retries each of its deliveries so.
5. A batch is one send for the pipeline's room (one thread, one request in
   flight), so a slow network holds one thread, not the others' deliveries.
"""

import datetime
import functools
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from django.conf import settings
from django.db import connection, transaction

from crm.rows import columns_of, in_list, in_params, read_rows
from postbacks.delivery import attempts, pixels, sender
from postbacks.delivery.render import MIN_SECRET, Request
from postbacks.models import Delivery, DeliveryAttempt
from tracker.models import Pixel

# Events in one request, per network.
LIMITS = {"facebook": 1000, "tiktok": 1000, "google": 25}
# GA4's body limit is 130 kB; a little is kept for the request's own fields.
GOOGLE_BODY = 130_000 - 1_000
# The oldest event a network takes, by its event time.
WINDOWS = {
    "facebook": datetime.timedelta(days=7),
    "tiktok": datetime.timedelta(days=7),
    "google": datetime.timedelta(hours=72),
}
NAMES = dict(Pixel.NETWORKS)
# GA4's rule for event and parameter names.
GA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@dataclass
class Batch:
    """The events of one pixel (and, for GA4, one client) in one request."""

    pixel: Pixel
    deliveries: list = field(default_factory=list)
    entries: list = field(default_factory=list)  # dicts, in the request's order
    texts: list = field(default_factory=list)  # their JSON, as sent
    request: Request | None = None
    shown: tuple | None = None  # the masked URL and headers, once made

    @property
    def network(self):
        return self.pixel.network


# -- claiming ------------------------------------------------------------------------


def claim_more(ids, at, fields):
    """Claim the rest of a batch for each batchable pixel among the claimed
    `ids`: its other due deliveries, oldest first, up to the network's limit,
    with the same claim (from `at`). Runs in the claim's transaction; returns
    the deliveries it took, with these `fields` read (batch.LOADED)."""
    if not ids:
        return []
    extra = []
    for pixel_id, network, count in _pixels_of(ids):
        room = LIMITS[network] - count
        if room > 0:
            extra += _claim_of_pixel(pixel_id, room, at, fields)
    return extra


def _pixels_of(ids):
    """[(pixel id, network, deliveries among `ids`)] of the batchable pixels."""
    q = connection.ops.quote_name
    pk = Delivery._meta.pk
    table, pixels_table = q(Delivery._meta.db_table), q(Pixel._meta.db_table)
    networks = ", ".join(f"'{n}'" for n in LIMITS)  # our constants
    sql = (
        f"SELECT d.pixel_id, p.network, COUNT(*) FROM {table} d "
        f"JOIN {pixels_table} p ON p.id = d.pixel_id "
        f"WHERE p.network IN ({networks}) AND {in_list('d.id', len(ids))} "
        "GROUP BY d.pixel_id, p.network"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, in_params([pk.get_db_prep_value(i, connection) for i in ids]))
        return cursor.fetchall()


def _claim_of_pixel(pixel_id, limit, at, fields):
    lease = datetime.timedelta(seconds=settings.POSTBACKS_CLAIM_SECONDS)
    ops = connection.ops
    now = ops.adapt_datetimefield_value(at)
    until = ops.adapt_datetimefield_value(at + lease)
    params = [pixel_id, Delivery.PENDING, now, Delivery.SENDING, now, limit]
    params += [Delivery.SENDING, until]
    with transaction.atomic(savepoint=False):
        return read_rows(Delivery, _claim_sql(fields), params, fields)


@functools.cache
def _claim_sql(fields):
    """batch._claim_sql's claim, of one pixel's deliveries. The oldest due ones
    are picked first and only they are checked for an earlier event of their
    conversion to the pixel (order.py): checked before the LIMIT, every due
    event of a busy pixel was. One held up is left for a later claim."""
    q = connection.ops.quote_name
    table = q(Delivery._meta.db_table)
    skip_locked = connection.features.has_select_for_update_skip_locked
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return (
        f"WITH picked AS MATERIALIZED (SELECT id, conversion_id, created, pixel_id "
        f"FROM {table} d WHERE pixel_id = %s "
        "AND ((status = %s AND (next_attempt IS NULL OR next_attempt <= %s)) "
        "OR (status = %s AND claimed_until < %s)) "
        f"ORDER BY next_attempt LIMIT %s{lock}), "
        f"due AS MATERIALIZED (SELECT id FROM picked d WHERE {_ready_sql()}) "
        f"UPDATE {table} SET status = %s, claimed_until = %s "
        f"WHERE id IN (SELECT id FROM due) RETURNING {columns_of(Delivery, fields)}"
    )


def _ready_sql():
    """order.ready_sql for deliveries to one pixel: none earlier of the same
    conversion to it unfinished. Only the conversion's index is for the
    planner (COALESCE hides the others): the pixel's and the status's hold
    every event of a busy pixel, and PostgreSQL, its statistics behind a
    burst, read them whole for each row. OFFSET 0 keeps it a probe of that
    index per picked event: joined instead (an anti join), PostgreSQL hashed
    the unfinished deliveries of the whole table for a thousand picked, a
    read of the table on every claim."""
    q = connection.ops.quote_name
    table = q(Delivery._meta.db_table)
    unfinished = ", ".join(f"'{s}'" for s in Delivery.UNFINISHED)  # our constants
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""  # SQLite: no OFFSET alone
    return (
        f"NOT EXISTS (SELECT 1 FROM {table} e WHERE e.conversion_id = d.conversion_id "
        f"AND COALESCE(e.status, '') IN ({unfinished}) AND e.created < d.created "
        f"AND COALESCE(e.pixel_id, 0) = d.pixel_id{fence})"
    )


# -- checking ------------------------------------------------------------------------


def too_old(network, conversion, at=None):
    """Why this event is past what `network` accepts, or ''."""
    window = WINDOWS.get(network)
    if window is None:
        return ""
    at = at or attempts.now()
    age = at.timestamp() - pixels._event_time(conversion)
    if age <= window.total_seconds():
        return ""
    return (
        f"Not sent: the event is {_span(age)} old and {NAMES[network]} accepts events "
        f"up to {_span(window.total_seconds())} old."
    )


def _span(seconds):
    hours = seconds / 3600
    return f"{hours / 24:.0f} days" if hours >= 7 * 24 else f"{hours:.0f} hours"


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def invalid(network, entry):
    """Why the network would refuse this entry (Meta refuses its whole batch
    with it), or ''."""
    if network == "facebook":
        return _invalid_meta(entry)
    if network == "tiktok":
        return _invalid_tiktok(entry)
    if network == "google":
        return _invalid_google(entry)
    return ""


def _invalid_meta(entry):
    if not entry.get("event_name"):
        return "Invalid for Facebook: missing event_name (the goal has no Facebook event)."
    if not _number(entry.get("event_time")):
        return "Invalid for Facebook: event_time is not a number."
    if not _number(entry.get("custom_data", {}).get("value")):
        return "Invalid for Facebook: the value is not a number."
    if not entry.get("user_data"):
        return "Invalid for Facebook: no user data at all (no click id, IP, browser or fbc/fbp)."
    return ""


def _invalid_tiktok(entry):
    if not entry.get("event"):
        return "Invalid for TikTok: missing event (the goal has no TikTok event)."
    if not _number(entry.get("event_time")):
        return "Invalid for TikTok: event_time is not a number."
    if not _number(entry.get("properties", {}).get("value")):
        return "Invalid for TikTok: the value is not a number."
    if not entry.get("user"):
        return "Invalid for TikTok: no user data at all (no click id, ttclid, IP or browser)."
    return ""


def _invalid_google(entry):
    name, params = entry.get("name") or "", entry.get("params", {})
    if not GA_NAME.match(name):
        return (
            f"Invalid for GA4: the event name {name!r} must start with a letter and hold "
            "only letters, digits and underscores, 40 at most."
        )
    if not _number(params.get("value")):
        return "Invalid for GA4: the value is not a number."
    if len(params) > 25:
        return "Invalid for GA4: more than 25 parameters."
    return ""


# -- building ------------------------------------------------------------------------


def batchable(d):
    return d.pixel_id is not None and d.pixel is not None and d.pixel.network in LIMITS


def prepare(deliveries, at=None):
    """Check and group the pixel deliveries of a claim: (batches, finished),
    finished being [(delivery, status, reason)] of those skipped or refused."""
    groups, finished = {}, []
    at = at or attempts.now()
    for d in deliveries:
        conversion = attempts.reported(d)
        network = d.pixel.network
        old = too_old(network, conversion, at)
        if old:
            finished.append((d, Delivery.SKIPPED, old))
            continue
        try:
            entry = pixels.entry(d.pixel, conversion, d.pk)
        except Exception as e:  # as Pipeline.prepare: a delivery that cannot be built fails alone
            finished.append((d, Delivery.FAILED, f"Cannot build the request: {e}"))
            continue
        reason = invalid(network, entry)
        if reason:
            finished.append((d, Delivery.FAILED, reason))
            continue
        key = d.pixel_id
        if network == "google":
            key = (d.pixel_id, pixels.google_client_id(conversion))
            entry["timestamp_micros"] = pixels._event_time(conversion) * 1_000_000
        groups.setdefault(key, []).append((d, entry))
    batches = [b for items in groups.values() for b in _split(items)]
    for b in batches:
        b.request = _request(b)
    return batches, finished


def _split(items):
    """Batches of at most the network's events (and GA4's bytes)."""
    batches, current, size = [], None, 0
    for d, entry in items:
        network = d.pixel.network
        if network == "google" and len(items) == 1:
            entry = {k: v for k, v in entry.items() if k != "timestamp_micros"}  # the request's
        text = json.dumps(entry)
        full = current is not None and (
            len(current.deliveries) >= LIMITS[network]
            or (network == "google" and size + len(text) + 2 > GOOGLE_BODY)
        )
        if current is None or full:
            current, size = Batch(pixel=d.pixel), 0
            batches.append(current)
        current.deliveries.append(d)
        current.entries.append(entry)
        current.texts.append(text)
        size += len(text) + 2
    return batches


def _request(b):
    if b.network == "facebook":
        return pixels.facebook_request(b.pixel, b.texts)
    if b.network == "tiktok":
        return pixels.tiktok_request(b.pixel, b.texts)
    first = b.entries[0]
    micros = first.get("timestamp_micros")
    if micros is None:  # one event: its time is the request's (as pixels.google)
        micros = pixels._event_time(attempts.reported(b.deliveries[0])) * 1_000_000
    client_id = pixels.google_client_id(attempts.reported(b.deliveries[0]))
    return pixels.google_request(b.pixel, client_id, micros, b.texts)


# -- the pipeline's hooks ------------------------------------------------------------


def take(pipeline, deliveries, claimed):
    """Start the batches of the pixel deliveries among `deliveries` on the
    pipeline's threads; returns the other deliveries, for the pipeline to send."""
    mine, rest = [], []
    for d in deliveries:
        (mine if batchable(d) else rest).append(d)
    if not mine:
        return deliveries
    batches, finished = prepare(mine)
    for d, status, reason in finished:
        attempts.finish(d, status, reason)
    pipeline.handled += len(finished)
    longest = attempts.attempt_timeout(None) + sender.DEADLINE_SLACK + 1
    latest = claimed + settings.POSTBACKS_CLAIM_SECONDS - longest
    for b in batches:
        with pipeline.lock:
            pipeline.in_flight += 1  # one request, whatever its events
        future = pipeline.pool.submit(send, b, latest)
        future.add_done_callback(lambda f, b=b: pipeline.done(b, b.request, f.result()))
    return rest


def send(b, latest):
    """On a pool thread: the batch's result, or None when it started too late."""
    if time.monotonic() > latest:
        return None
    # One event keeps its delivery id in the header, as before; a batch's
    # events are told apart by their event_id inside.
    one = b.deliveries[0].pk if len(b.deliveries) == 1 else None
    return attempts.send(b.request, None, one)


def expand(ended):
    """The pipeline's ended sends, one entry per delivery: a batch's answer
    mapped back onto each of its deliveries (their `verdict`)."""
    out = []
    for d, req, result in ended:
        if not isinstance(d, Batch):
            out.append((d, req, result))
            continue
        b = d
        if result is None:  # never sent: each is due again, as an unsent delivery
            out += [(one, req, None) for one in b.deliveries]
            continue
        verdicts = outcomes(b.network, result, len(b.deliveries))
        for i, (one, verdict) in enumerate(zip(b.deliveries, verdicts, strict=True)):
            one.verdict = verdict
            out.append((one, _own_request(b, i), result))
    return out


def _own_request(b, i):
    """What the attempt row of the batch's i-th delivery shows (3. above)."""
    req = b.request
    if len(b.deliveries) == 1:
        return req
    if b.shown is None:  # masked once per batch, not once per row
        b.shown = (req.url_text(), req.headers_text(), _secret_forms(req))
    url, headers, forms = b.shown
    text = b.texts[i]
    if any(form in text for form in forms):
        text = req.mask(text)
    body = f"Event {i + 1} of {len(b.deliveries)} in one request:\n{text}"
    return Shown(req.method, url, headers, body)


def _secret_forms(req):
    """The texts Request.mask looks for."""
    forms = set()
    for secret in req.secrets:
        if len(secret) >= MIN_SECRET:
            forms |= {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    return forms


@dataclass
class Shown:
    """A request as an attempt row stores it, its secrets masked already."""

    method: str
    url: str
    headers: str
    body: str

    def url_text(self):
        return self.url

    def headers_text(self):
        return self.headers

    def body_text(self):
        return self.body


def judge(d, result):
    """(ok, reason) of a delivery's send: its batch's verdict, else the sender's."""
    verdict = getattr(d, "verdict", None)
    return verdict if verdict is not None else sender.judge(result, d.postback)


# -- the answers ---------------------------------------------------------------------


def outcomes(network, result, count):
    """[(ok, reason)] per event of a batch, from the network's answer."""
    ok, reason = sender.judge(result)
    body = _json(result.body)
    if network == "facebook":
        return _meta(ok, reason, body, count)
    if network == "tiktok":
        return _tiktok(ok, reason, body, count)
    if network == "google":
        return _google(ok, reason, body, count)
    return _all(ok, reason, count)


def _json(text):
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _all(ok, reason, count):
    return [(ok, reason)] * count


def _named(count, failed, ok_reason=""):
    """Each event ok except those of `failed` ({index: reason})."""
    return [(False, failed[i]) if i in failed else (True, ok_reason) for i in range(count)]


def _meta(ok, reason, body, count):
    """Meta takes a batch whole or not at all: {"events_received": n, ...}, or
    an error for the batch, which may name the event it refused."""
    if not ok:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        text = error.get("error_user_msg") or error.get("message") or ""
        if text:
            reason = f"{reason}: {text}"
        index = _event_index(error)
        if index is None or not 0 <= index < count:
            return _all(False, reason, count)
        refused = f"Refused with its batch for event {index + 1}'s error ({reason}); sent again."
        return [(False, reason) if i == index else (False, refused) for i in range(count)]
    received = body.get("events_received")
    if isinstance(received, int) and received < count:
        # Which ones is not said: all are sent again; Meta drops repeats by event_id.
        return _all(False, f"Facebook received {received} of {count} events", count)
    return _all(True, "", count)


def _event_index(error):
    data = error.get("error_data")
    if isinstance(data, str):
        data = _json(data)
    index = data.get("event_index") if isinstance(data, dict) else None
    return index if isinstance(index, int) else None


def _tiktok(ok, reason, body, count):
    """TikTok answers HTTP 200 with its own code: 0 all taken, 20001 partly
    (the failed entries listed with their index), any other the batch refused."""
    if not ok:
        return _all(False, reason, count)
    code, message = body.get("code"), body.get("message") or ""
    if code in (0, None):  # None: an answer without TikTok's code, judged by its status
        return _all(True, "", count)
    if code == 20001:
        failed = _failed_entries(body.get("data"), count, "TikTok")
        if failed:
            return _named(count, failed)
        # Not said which: all go again; TikTok drops repeats by event_id.
    return _all(False, f"TikTok code {code}: {message}".strip(), count)


def _failed_entries(data, count, network):
    """{index: reason} from lists of entries that carry an index in `data`."""
    failed = {}
    lists = data.values() if isinstance(data, dict) else [data]
    for items in lists:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            index = item.get("index", item.get("event_index"))
            if isinstance(index, int) and 0 <= index < count:
                text = item.get("message") or item.get("reason") or item.get("error") or ""
                failed[index] = f"{network} refused this event: {text}".strip()
    return failed


FIELD_INDEX = re.compile(r"^events\[(\d+)\]")


def _google(ok, reason, body, count):
    """/mp/collect answers 2xx and nothing else; the validation server (and a
    stand-in) lists validationMessages, whose fieldPath names the event."""
    if not ok:
        return _all(False, reason, count)
    messages = body.get("validationMessages") or []
    if not messages:
        return _all(True, "", count)
    failed, general = {}, []
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        text = f"GA4: {m.get('description') or m.get('validationCode') or 'invalid'}"
        match = FIELD_INDEX.match(m.get("fieldPath") or "")
        if match and int(match.group(1)) < count:
            failed[int(match.group(1))] = text
        else:
            general.append(text)
    if general:
        return _all(False, "; ".join(general), count)
    return _named(count, failed)


# -- test mode -----------------------------------------------------------------------


def sample(pixel):
    """A conversion to test the pixel with, not saved: of the first goal with
    an event for the pixel's network, a client seen now. None without one."""
    from crm.models import Client, Conversion  # the models of the rows made here

    goal = next(
        (g for g in pixel.spot.goals.order_by("order") if getattr(g, f"{pixel.network}_event")),
        None,
    )
    if goal is None:
        return None
    client = Client(spot=pixel.spot, click_id="test-event", name="Test event")
    return Conversion(
        spot=pixel.spot,
        client=client,
        goal=goal,
        amount=1,
        currency=pixel.spot.currency,
        tid="test-event",
        created=attempts.now(),
    )


# Metrica has no test mode: an upload is a conversion, whatever its client.
TESTABLE = tuple(LIMITS)


def test_request(pixel, conversion):
    """The request of a test send: Meta's and TikTok's test event code, GA4's
    validation server, and an event id of its own (no network mixes it with a
    real event)."""
    return pixels.build(pixel, conversion, f"test-{uuid.uuid4()}", test=True)


def test_send(pixel, conversion, user=None):
    """Send one test event of `conversion` to the pixel, judged as the network
    answers (a TikTok code, GA4's validation messages), logged as a test
    attempt of no delivery. Never retried."""
    req = test_request(pixel, conversion)
    result = sender.send(req, attempts.TEST_SEND_TIMEOUT)
    [(ok, reason)] = outcomes(pixel.network, result, 1)
    values = attempts.attempt_values(None, req, result, ok, reason, 1, user=user)
    return DeliveryAttempt.objects.create(**{**values, "test": True})

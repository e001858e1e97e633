"""The incoming postback endpoint's work, apart from HTTP: store, decide, answer.

The design constraints are those of the wing (postbacks/incoming/__init__.py).
"""

import datetime
import functools
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from crm import spots
from crm.http import TooBig, Unreadable, read_body
from crm.models import Client, CustomFieldValue
from crm.rows import columns_of, read_rows
from crm.values import clean_text, money
from postbacks.delivery.fanout import announce
from postbacks.incoming import signed, unmatched
from postbacks.incoming.params import (
    CLICK_ID,
    FIELD_PREFIX,
    MAX_PLAYER_ID,
    MAX_TID,
    PLAYER_ID,
    TID,
    Rejected,
    check_caller,
    event_word,
    find_partner,
    is_macro,
    name_of,
    parse_params,
    pick,
    read_amount,
    read_currency,
    read_status,
    refuse_macros,
    short,
    words,
)
from postbacks.models import IncomingPostback
from tracker import metrics
from tracker.addresses import client_addr
from tracker.models import Goal
from tracker.retry import conflict, retried

logger = logging.getLogger(__name__)

STORAGE_NOTE = "Stored: "  # warnings written when storing, kept across replays
OK_STATUSES = (
    IncomingPostback.QUEUED,
    IncomingPostback.ACCEPTED,
    IncomingPostback.UPDATED,
    IncomingPostback.DUPLICATE,
)
METHODS = ("GET", "POST")  # any other is stored, then answered 405


def max_stored():
    """Longest query or body kept on the row (the rest is cut, and the cut noted)."""
    return getattr(settings, "INCOMING_MAX_STORED", 64 * 1024)


@dataclass
class Outcome:
    http_status: int
    status: str  # accepted, updated, duplicate, unmatched or rejected
    error: str = ""
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # for the log only
    client: Client | None = None
    conversion: object = None
    plain: str = ""
    click_id: str = ""  # what an unmatched postback waits for
    row_id: int | None = None

    @property
    def ok(self):
        return self.status in OK_STATUSES

    def payload(self):
        if self.status == IncomingPostback.QUEUED:
            return {"ok": True, "status": self.status, "id": self.row_id}
        data = {
            "ok": self.ok,
            "status": self.status,
            "conversion": self.conversion.pk if self.conversion else None,
            "goal": self.conversion.goal.token if self.conversion else None,
            "duplicate": self.status == "duplicate",
            "warnings": self.warnings,
        }
        if self.error:
            data["error"] = self.error
        return data


# -- storing ---------------------------------------------------------------


def decode(raw):
    """Bytes as text; bytes that are not UTF-8 are kept visible as \\xNN."""
    return clean_text(raw.decode("utf-8", errors="backslashreplace"))


def capped(text, what, notes):
    limit = max_stored()
    if len(text) <= limit:
        return text
    notes.append(f"{STORAGE_NOTE}{what} cut to {limit} of {len(text)} characters.")
    return text[:limit]


def read_request(request):
    """(query, body, stored body, raw bytes, storage notes) of a request: the full
    query and body texts (body None when too large to read) and what the row keeps."""
    notes = []
    query = decode(request.META.get("QUERY_STRING", "").encode("latin-1", "replace"))
    raw = b""
    try:
        raw = read_body(request, head=max_stored())
        body = decode(raw)
        stored_body = capped(body, "body", notes)
    except TooBig as e:
        # Over the upload limit: not processed, but its beginning is kept.
        body = None
        stored_body = decode(e.head)[: max_stored()]
        size = request.META.get("CONTENT_LENGTH") or "over"
        notes.append(
            f"{STORAGE_NOTE}body of {size} bytes is over the upload limit; its first "
            f"{len(stored_body)} characters kept, not processed."
        )
    except Unreadable as e:
        # The request is stored and processed from its query alone.
        body = stored_body = ""
        notes.append(f"{STORAGE_NOTE}the body could not be read ({e}); ignored.")
    return query, body, stored_body, raw, notes


def new_row(request, token, query, stored_body, notes):
    """The request's row, not saved yet."""
    return IncomingPostback(
        token=clean_text(token)[:100],
        method=clean_text(request.method)[:10],
        path=capped(clean_text(request.path), "path", notes),
        query=capped(query, "query", notes),
        body=stored_body,
        content_type=clean_text(request.META.get("CONTENT_TYPE", ""))[:200],
        remote_addr=client_addr(request),
        warnings="\n".join(notes),
    )


def answer(request, token):
    """The endpoint's work: queue the request, or decide it at once. Returns its Outcome."""
    spot = spots.cached(token)
    query, body, stored_body, raw, notes = read_request(request)
    row = new_row(request, token, query, stored_body, notes)
    row.webhook = signed.capture(request, raw)
    if spot is None or spot.answer_after_processing or notes:
        # Decided before answering: the spot asks for its outcome, or the row
        # could not hold the whole request for a worker to decide it from.
        row.save(force_insert=True)
        return run(row, query, body)  # against the spot read afresh, as the workers decide
    return enqueue(row, spot, query, body)


def enqueue(row, spot, query, body):
    """One write: the row queued for the workers, or rejected for what needs no
    client to be known bad. Autocommitted: answered only once it is stored."""
    row.spot = spot
    try:
        call = read_call(row, spot, query, body)
    except Rejected as e:
        call = Outcome(e.http_status, IncomingPostback.REJECTED, error=e.message)
    if isinstance(call, Outcome):  # rejected, or a signed repeat
        outcome = call
        row.processed = timezone.now()
    else:
        outcome = Outcome(200, IncomingPostback.QUEUED, plain=plain_answer(spot, call.partner))
        row.click_id = call.click_id[:255]  # the workers keep a click's rows in order by it
    row.status, row.http_status, row.error = outcome.status, outcome.http_status, outcome.error
    row.warnings = "\n".join(filter(None, [row.warnings, *outcome.warnings]))
    row.save(force_insert=True)
    outcome.row_id = row.pk
    if outcome.status != IncomingPostback.QUEUED:
        metrics.incoming(spot, outcome.status)
    # Queued, nobody is told: the loops look for queued rows every
    # INCOMING_LINGER seconds (postbacks/loops/intake.py), which costs the
    # answer no round trip to Redis.
    return outcome


# -- processing ------------------------------------------------------------


def storage_notes(row):
    """The warnings written when the row was stored, kept across its decisions."""
    return [w for w in row.warnings.splitlines() if w.startswith(STORAGE_NOTE)]


def internal_error(e, http_status=500):
    """The outcome of a decision that failed by a fault of ours, not the request's."""
    return Outcome(
        http_status,
        IncomingPostback.REJECTED,
        error=f"Internal error ({e.__class__.__name__}); the request is stored and can "
        "be replayed.",
    )


def run(row, query, body):
    """Process a stored request and record the outcome on its row."""
    notes = storage_notes(row)
    try:
        outcome = retried(decide, row, query, body, notes)
    except Exception as e:
        logger.exception("Incoming postback %s failed", row.pk)
        # 503: lost every race to other writers, try later.
        outcome = internal_error(e, 503 if conflict(e) else 500)
        record(row, outcome, notes)
    metrics.incoming(row.spot, outcome.status)  # once per decision, not per retried transaction
    return outcome


def decide(row, query, body, storage_notes):
    """One transaction: the postback's effects and its outcome on its row."""
    outcome = process(row, query, body)
    record(row, outcome, storage_notes)
    return outcome


def record(row, outcome, storage_notes):
    fill(row, outcome, storage_notes)
    # The outcome only: the stored request (up to 64 KiB of it) is not written again.
    row.save(update_fields=OUTCOME_FIELDS)


def fill(row, outcome, storage_notes):
    """Put the outcome on the row (not saved)."""
    # The answer's status is the row's: what this request did.
    row.status = outcome.status
    row.http_status = outcome.http_status
    row.error = outcome.error
    row.warnings = "\n".join([*storage_notes, *outcome.notes, *outcome.warnings])
    row.client = outcome.client
    row.conversion = outcome.conversion
    row.click_id = outcome.click_id
    row.processed = timezone.now()


OUTCOME_FIELDS = [
    "spot",
    "status",
    "http_status",
    "error",
    "warnings",
    "client",
    "conversion",
    "click_id",
    "processed",
    "webhook_id",
]


def process(row, query, body):
    spot = row.spot or spots.find(row.token)
    if spot is None:
        return Outcome(404, "rejected", error="Unknown postback URL: no spot has this token.")
    row.spot = spot
    try:
        return accept(row, spot, query, body)
    except Rejected as e:
        return Outcome(e.http_status, "rejected", error=e.message)


@dataclass
class Call:
    """What a request asks, read and checked as far as it can be without its client."""

    partner: object
    params: dict
    event: str
    click_id: str
    amount: object
    currency: str
    tid: str
    status: object
    warnings: list


def read_call(row, spot, query, body):
    """The request's Call; raises Rejected. A signed request repeating an earlier
    one is answered by the Outcome returned instead."""
    if row.method not in METHODS:
        raise Rejected(405, f"Use {' or '.join(METHODS)}, not {row.method}.")
    if body is None:
        raise Rejected(413, "The request is too large to process.")
    params, warnings = parse_params(query, body, row.content_type)
    partner = find_partner(spot, params)
    check_caller(spot, partner, row.remote_addr)
    repeat = signed.check(row, spot, partner, getattr(row, "webhook", None))
    if repeat:  # 200, not 409: a sender retries any other answer (signed.py)
        return Outcome(200, IncomingPostback.DUPLICATE, warnings=[repeat])
    refuse_macros(params, partner)
    event = event_word(spot, params)
    click_id = pick(params, CLICK_ID + ([partner.click_id_param.lower()] if partner else []))
    if not click_id:
        raise Rejected(400, "No click id: send clickid=<our click id or your tracker's>.")
    amount = read_amount(params)
    currency = read_currency(params, spot)
    tid = pick(params, TID)
    if len(tid) > MAX_TID:
        raise Rejected(400, f"{name_of(params, TID)} is longer than {MAX_TID} characters.")
    status = read_status(params, spot, partner)
    return Call(partner, params, event, click_id, amount, currency, tid, status, warnings)


def accept(row, spot, query, body):
    call = read_call(row, spot, query, body)
    return call if isinstance(call, Outcome) else apply_call(spot, call)


def apply_call(spot, call):
    """Decide a read Call against its client: the conversion, fields and events."""
    partner, params, warnings = call.partner, call.params, call.warnings
    # Found and locked in one query; the lock holds to the commit, so the
    # postbacks of one client are decided one after the other.
    client = find_client(spot, call.click_id, lock=True)
    if client is None:
        days = unmatched.wait_for_client(spot)
        return Outcome(
            202,
            "unmatched",
            error=f"No client of this spot has the click id {call.click_id[:200]!r} yet; the "
            f"postback is kept and replayed by itself when that client appears (within {days} "
            "days).",
            warnings=warnings,
            click_id=call.click_id[:255],
        )
    client.spot = spot  # with its goals
    if partner is not None and client.partner_id is None:
        # Statistics group a client under the partner of its first postback.
        client.partner = partner
        client.save(update_fields=["partner"])
    warnings += apply_player_id(client, params)
    warnings += apply_fields(client, params)
    try:
        conversion, how = client.record_conversion(
            call.event,
            amount=call.amount,
            currency=call.currency,
            tid=call.tid,
            status=call.status,
            locked=True,
        )
    except Goal.DoesNotExist as e:
        raise Rejected(400, f"This spot cannot record the event {call.event!r}: {e}") from e
    if conversion.decision:
        warnings.append(conversion.decision)
    warnings += unrated_warning(conversion)
    status = {"created": IncomingPostback.ACCEPTED}.get(how, how)
    outcome = Outcome(200, status, warnings=warnings)
    outcome.client, outcome.conversion = client, conversion
    outcome.plain = plain_answer(spot, partner)
    outcome.notes += what_it_did(conversion, how)
    announce(conversion, how)
    return outcome


def plain_answer(spot, partner):
    return (partner.plain_answer if partner else "") or spot.plain_answer


def what_it_did(conversion, how):
    """For the log: what this request changed, not the conversion's state since."""
    named = f"conversion {conversion.pk} ({conversion.goal.token}"
    named += f", tid {conversion.tid!r})" if conversion.tid else ")"
    if how == "duplicate":
        return [f"Duplicate of {named}: nothing changed."]
    if how != "updated":
        return []
    before_status, before_amount = conversion.change
    changes = []
    if before_status != conversion.status:
        changes.append(f"status {before_status} -> {conversion.status}")
    if before_amount != conversion.amount:
        changes.append(f"amount {money(before_amount)} -> {money(conversion.amount)}")
    return [f"Updated {named}: {'; '.join(changes)}."]


# -- applying --------------------------------------------------------------


def unrated_warning(conversion):
    if conversion.reported_amount is not None:
        return []
    currency, reporting = conversion.currency, settings.REPORTING_CURRENCY
    return [
        f"No exchange rate from {reporting} to {currency} on or before "
        f"{timezone.localdate(conversion.created)}: the amount is kept in {currency} and counted "
        f"in {reporting} once rates are imported (manage.py import_rates, then "
        "manage.py revalue_conversions)."
    ]


def find_client(spot, click_id, lock=False):
    """Our click id first, then the team tracker's (the newest client with it),
    in one query; `lock` locks the client's row for the transaction. A batch
    locks its clients at once beforehand (batches.lock_clients)."""
    locked = getattr(spot, "locked_clients", None)
    if locked is not None and click_id in locked:
        return locked[click_id]
    params = [spot.pk, click_id, click_id, click_id]
    return next(iter(read_rows(Client, _find_client_sql(lock), params)), None)


@functools.cache
def _find_client_sql(lock):  # raw: see 4. above
    q = connection.ops.quote_name
    locked = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    return (
        f"SELECT {columns_of(Client)} FROM {q(Client._meta.db_table)} WHERE spot_id = %s "
        "AND (click_id = %s OR cl_id = %s) "
        "ORDER BY CASE WHEN click_id = %s THEN 1 ELSE 0 END DESC, created DESC, id DESC "
        f"LIMIT 1{locked}"
    )


def apply_player_id(client, params):
    player_id = pick(params, PLAYER_ID)
    if not player_id or player_id == client.player_id:
        return []
    if is_macro(player_id):
        name = name_of(params, PLAYER_ID)
        return [f"{name} is {player_id[:100]!r}, an unreplaced macro of the network: ignored."]
    if len(player_id) > MAX_PLAYER_ID:
        name = name_of(params, PLAYER_ID)
        return [f"{name} is longer than {MAX_PLAYER_ID} characters: ignored."]
    client.player_id = player_id
    client.save(update_fields=["player_id"])
    return []


def apply_fields(client, params):
    """Write fields.<key>=value; a key or value that does not fit is a warning."""
    warnings = []
    wanted = {k[len(FIELD_PREFIX) :]: v for k, v in params.items() if k.startswith(FIELD_PREFIX)}
    if not wanted:
        return warnings
    known = {f.key: f for f in client.spot.custom_fields.all()}
    values = []
    for key, raw in wanted.items():
        custom_field = known.get(key)
        if is_macro(raw):
            warnings.append(
                f"fields.{key[:100]} is {raw[:100]!r}, an unreplaced macro of the network: ignored."
            )
            continue
        if custom_field is None:
            warnings.append(
                f"fields.{key[:100]}: no custom field with this key "
                f"(this spot has: {words(known) or 'none'}); ignored."
            )
            continue
        try:
            stored = custom_field.to_stored(raw)
        except ValueError as e:
            warnings.append(f"fields.{key}: {short(e)} (a {custom_field.type} field); ignored.")
            continue
        values.append(CustomFieldValue(client=client, field=custom_field, value=stored))
    loaded = getattr(client, "loaded_field_values", None)
    if loaded is not None:  # read for a batch (batches.load_field_values): kept current
        loaded.update({v.field.key: v.value for v in values})
    # One statement for all of them: insert, or update the client's value.
    CustomFieldValue.objects.bulk_create(
        values,
        update_conflicts=True,
        unique_fields=["client", "field"],
        update_fields=["value", "updated"],
    )
    return warnings


# -- replaying -------------------------------------------------------------

REPLAYABLE = (IncomingPostback.UNMATCHED, IncomingPostback.REJECTED)


def stale_before():
    """A row still "received" this long after arriving lost its processing
    (a killed worker, a crash) and may be replayed."""
    seconds = getattr(settings, "INCOMING_STALE_AFTER", 600)
    return timezone.now() - datetime.timedelta(seconds=seconds)


def replayable():
    cutoff = stale_before()
    stale = Q(status=IncomingPostback.RECEIVED, received__lt=cutoff) & (
        Q(processed__isnull=True) | Q(processed__lt=cutoff)
    )
    return Q(status__in=REPLAYABLE) | stale


def replay(row, why=""):
    """Process a stored unmatched, rejected or stale postback again. Returns its
    Outcome, or None when the row is not replayable (any more)."""
    before = row.status
    # Claim it: of two simultaneous replays of one row only one proceeds.
    claimed = IncomingPostback.objects.filter(replayable(), pk=row.pk).update(
        status=IncomingPostback.RECEIVED, processed=timezone.now()
    )
    if not claimed:
        return None
    row.refresh_from_db()
    # A request stored cut short is not processed from its remains.
    outcome = run(row, row.query, None if storage_notes(row) else row.body)
    because = f", {why}" if why else ""
    note = f"Replayed {timezone.now():%Y-%m-%d %H:%M:%S} (was {before}{because})."
    row.warnings = "\n".join(filter(None, [row.warnings, note]))
    row.save(update_fields=["warnings"])
    return outcome

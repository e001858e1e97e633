"""The incoming postback endpoint's work, apart from HTTP.

1. `store` writes the raw request as an IncomingPostback row and commits it
   before anything else happens, so a request is never lost, whatever
   processing does later.
2. `run` processes a stored request (a live one, or a replay of an old row)
   and records the outcome on the row in the same transaction as the
   conversion, so a row marked accepted always has its conversion and a
   replay can never count an event twice.
3. Bad input is an `Outcome` with a 4xx status and a message naming the
   parameter; only a bug gives a 500, and that is logged on the row too.
"""

import ipaddress
import json
import logging
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.utils import timezone

from crm import macros, values
from crm.models import Client, CustomFieldValue, Message
from postbacks.fanout import create_deliveries
from postbacks.models import IncomingPostback
from tracker.models import CONVERSION_STATUSES, Goal, Spot, parse_status_map

logger = logging.getLogger(__name__)

# Parameter names of both dialects, the first one present wins: seed 003's
# tracker.* names, then seed 002's.
CLICK_ID = ["clickid", "click_id"]
EVENT = ["tracker.event", "goal", "event"]
AMOUNT = ["tracker.cost", "sum", "amount"]
CURRENCY = ["tracker.currency", "currency"]
TID = ["tracker.tid", "tid"]
STATUS = ["tracker.status", "status"]
PLAYER_ID = ["playerid", "player_id"]
FIELD_PREFIX = "fields."

MAX_FIELDS = 1000  # parameters per request, as Django's own form limit
MAX_TID = 200  # Conversion.tid
MAX_PLAYER_ID = 200  # Client.player_id
STORAGE_NOTE = "Stored: "  # warnings written when storing, kept across replays
OK_STATUSES = ("accepted", "updated", "duplicate")


def max_stored():
    """Longest query or body kept on the row (the rest is cut, and the cut noted)."""
    return getattr(settings, "INCOMING_MAX_STORED", 64 * 1024)


class Rejected(Exception):
    """Bad input: answered with `http_status` and this message."""

    def __init__(self, http_status, message):
        super().__init__(message)
        self.http_status = http_status
        self.message = message


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

    @property
    def ok(self):
        return self.status in OK_STATUSES

    @property
    def row_status(self):
        if self.status in ("accepted", "updated"):
            return IncomingPostback.ACCEPTED
        return self.status

    def payload(self):
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


def clean_text(text):
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold a lone surrogate
    # (JSON's "\ud800"); everything else is kept as it came.
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def decode(raw):
    """Bytes as text; bytes that are not UTF-8 are kept visible as \\xNN."""
    return clean_text(raw.decode("utf-8", errors="backslashreplace"))


def capped(text, what, notes):
    limit = max_stored()
    if len(text) <= limit:
        return text
    notes.append(f"{STORAGE_NOTE}{what} cut to {limit} of {len(text)} characters.")
    return text[:limit]


def client_addr(request):
    addr = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def read_head(request):
    try:
        return request.read(max_stored())
    except OSError:
        return b""


def store(request, token):
    """Write the raw request and commit it. Returns (row, query, body) with the
    full query and body texts (body None when too large to read)."""
    notes = []
    query = decode(request.META.get("QUERY_STRING", "").encode("latin-1", "replace"))
    try:
        body = decode(request.body)
        stored_body = capped(body, "body", notes)
    except RequestDataTooBig:
        # Over Django's upload limit: not processed, but its beginning is kept.
        body = None
        stored_body = decode(read_head(request))
        notes.append(
            f"{STORAGE_NOTE}body of {request.META.get('CONTENT_LENGTH') or 'over'} bytes is over "
            f"the upload limit; its first {len(stored_body)} characters kept, not processed."
        )
    row = IncomingPostback.objects.create(
        token=clean_text(token)[:100],
        method=request.method[:10],
        path=capped(clean_text(request.path), "path", notes),
        query=capped(query, "query", notes),
        body=stored_body,
        content_type=clean_text(request.META.get("CONTENT_TYPE", ""))[:200],
        remote_addr=client_addr(request),
        warnings="\n".join(notes),
    )
    return row, query, body


# -- processing ------------------------------------------------------------


def run(row, query, body):
    """Process a stored request and record the outcome on its row."""
    storage_notes = [w for w in row.warnings.splitlines() if w.startswith(STORAGE_NOTE)]
    try:
        with transaction.atomic():
            outcome = process(row, query, body)
            record(row, outcome, storage_notes)
    except Exception as e:
        logger.exception("Incoming postback %s failed", row.pk)
        outcome = Outcome(
            500,
            "rejected",
            error=f"Internal error ({e.__class__.__name__}); the request is stored and can "
            "be replayed.",
        )
        record(row, outcome, storage_notes)
    return outcome


def record(row, outcome, storage_notes):
    row.status = outcome.row_status
    row.http_status = outcome.http_status
    row.error = outcome.error
    row.warnings = "\n".join([*storage_notes, *outcome.notes, *outcome.warnings])
    row.client = outcome.client
    row.conversion = outcome.conversion
    row.processed = timezone.now()
    row.save()


def process(row, query, body):
    spot = row.spot or find_spot(row.token)
    if spot is None:
        return Outcome(404, "rejected", error="Unknown postback URL: no spot has this token.")
    row.spot = spot
    try:
        return accept(row, spot, query, body)
    except Rejected as e:
        return Outcome(e.http_status, "rejected", error=e.message)


def find_spot(token):
    try:
        token = uuid.UUID(token)
    except ValueError:
        return None
    return Spot.objects.filter(postback_token=token).first()


def accept(row, spot, query, body):
    if row.method not in ("GET", "POST"):
        raise Rejected(405, f"Use GET or POST, not {row.method}.")
    if body is None:
        raise Rejected(413, "The body is too large.")
    params, warnings = parse_params(query, body, row.content_type)
    partner = find_partner(spot, params)
    check_caller(spot, partner, row.remote_addr)
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

    client = find_client(spot, click_id)
    if client is None:
        return Outcome(
            202,
            "unmatched",
            error=f"No client of this spot has the click id {click_id[:200]!r}; the postback "
            "is kept and is replayed once the client exists.",
            warnings=warnings,
        )
    # Decided one after the other per client: the lock holds to the commit.
    client = (
        Client.objects.select_for_update(of=("self",))
        .select_related("spot", "manager")
        .get(pk=client.pk)
    )
    warnings += apply_player_id(client, params)
    warnings += apply_fields(client, params)
    try:
        conversion, how = client.record_conversion(
            event, amount=amount, currency=currency, tid=tid, status=status
        )
    except Goal.DoesNotExist as e:
        raise Rejected(400, f"This spot cannot record the event {event!r}: {e}") from e
    outcome = Outcome(200, how if how != "created" else "accepted", warnings=warnings)
    outcome.client, outcome.conversion = client, conversion
    outcome.plain = (partner.plain_answer if partner else "") or spot.plain_answer
    if how == "created":
        create_deliveries(conversion)
        post_system_message(conversion)
    elif how == "updated":
        outcome.notes.append(
            f"Updated conversion {conversion.pk}: status {conversion.status}, "
            f"amount {conversion.amount}."
        )
    return outcome


# -- reading the parameters ------------------------------------------------


def parse_params(query, body, content_type):
    """The request's parameters, lowercase names; the body's win over the query's."""
    warnings = []
    params = {}
    for key, value in parse_pairs(query, "query string"):
        params.setdefault(key, value)
    ctype = content_type.split(";")[0].strip().lower()
    text = body.strip()
    if text:
        if ctype == "application/json" or (
            ctype != "application/x-www-form-urlencoded" and text.startswith("{")
        ):
            pairs = json_pairs(text)
        elif ctype in ("application/x-www-form-urlencoded", "", "text/plain") and "=" in text:
            pairs = parse_pairs(text, "body")
        else:
            pairs = []
            warnings.append(f"The body ({ctype or 'no content type'}) was not read.")
        params.update(dict(pairs))
    return params, warnings


def parse_pairs(text, where):
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS)
    except ValueError as e:
        raise Rejected(400, f"The {where} has more than {MAX_FIELDS} parameters.") from e
    return [(clean_text(k).strip().lower(), clean_text(v).strip()) for k, v in pairs]


def json_pairs(text):
    try:
        data = json.loads(text)
    except ValueError as e:
        raise Rejected(400, f"The body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise Rejected(400, "The JSON body must be an object of parameters.")
    pairs = []
    flatten(data, "", pairs)
    if len(pairs) > MAX_FIELDS:
        raise Rejected(400, f"The body has more than {MAX_FIELDS} parameters.")
    return pairs


def flatten(data, prefix, pairs):
    # {"tracker": {"event": "sale"}} is tracker.event=sale, as in the query dialect.
    for key, value in data.items():
        name = f"{prefix}{key}".strip().lower()
        if isinstance(value, dict):
            flatten(value, name + ".", pairs)
        elif isinstance(value, bool):
            pairs.append((clean_text(name), "true" if value else "false"))
        elif value is None:
            pairs.append((clean_text(name), ""))
        elif isinstance(value, str | int | float):
            pairs.append((clean_text(name), clean_text(str(value)).strip()))
        else:
            pairs.append((clean_text(name), clean_text(json.dumps(value))))


def pick(params, names):
    for name in names:
        if params.get(name):
            return params[name]
    return ""


def name_of(params, names):
    """The parameter name the caller used (for error messages)."""
    return next((n for n in names if params.get(n)), names[0])


def find_partner(spot, params):
    slug = params.get("partner", "")
    if not slug:
        return None
    partner = spot.partners.filter(slug=slug).first()
    if partner is None:
        known = ", ".join(spot.partners.values_list("slug", flat=True)) or "none"
        raise Rejected(400, f"Unknown partner {slug[:100]!r}; this spot's partners: {known}.")
    return partner


def check_caller(spot, partner, addr):
    rules = partner if partner is not None and partner.allowed_ips.strip() else spot
    try:
        allowed = rules.ip_allowed(addr or "")
    except ValueError as e:
        raise Rejected(403, "The IP allowlist of this spot is invalid; fix it in the admin.") from e
    if not allowed:
        raise Rejected(403, f"Calls from {addr or 'an unknown address'} are not allowed.")


def event_word(spot, params):
    word = pick(params, EVENT).lower()
    accepted = [*spot.accepted_words(), "sale"]
    if not word:
        raise Rejected(
            400, f"No event: send tracker.event=<event> or goal=<event>, one of {words(accepted)}."
        )
    for candidate in (word, word.rstrip("_")):
        # first_deposit_ is what an untransformed link of seed 003 sends.
        if candidate in accepted:
            return candidate
    raise Rejected(
        400, f"Unknown event {word[:100]!r} in {name_of(params, EVENT)}: use {words(accepted)}."
    )


def words(items):
    return ", ".join(dict.fromkeys(items))


def read_amount(params):
    raw = pick(params, AMOUNT)
    if not raw:
        return None
    try:
        return values.parse_amount(raw)
    except ValueError as e:
        raise Rejected(400, f"{name_of(params, AMOUNT)}: {short(e)}; send e.g. 12.50") from e


def read_currency(params, spot):
    raw = pick(params, CURRENCY)
    if not raw:
        return spot.currency
    try:
        return values.parse_currency(raw)
    except ValueError as e:
        raise Rejected(400, f"{name_of(params, CURRENCY)}: {short(e)}, e.g. USD") from e


def read_status(params, spot, partner):
    raw = pick(params, STATUS).lower()
    if not raw:
        return None
    mapping = {s: s for s, _ in CONVERSION_STATUSES}
    for rules in (spot, partner):
        if rules is None:
            continue
        try:
            mapping.update(parse_status_map(rules.status_map))
        except ValueError:
            logger.warning("Invalid status map on %s", rules)
    if raw not in mapping:
        raise Rejected(
            400, f"{name_of(params, STATUS)}: unknown status {raw[:100]!r}; use {words(mapping)}."
        )
    return mapping[raw]


def short(error):
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "…"


# -- applying --------------------------------------------------------------


def find_client(spot, click_id):
    """Our click id first, then the team tracker's (the newest client with it)."""
    clients = Client.objects.filter(spot=spot)
    found = clients.filter(click_id=click_id).first()
    if found is None:
        found = clients.filter(cl_id=click_id).order_by("-created", "-id").first()
    return found


def apply_player_id(client, params):
    player_id = pick(params, PLAYER_ID)
    if not player_id or player_id == client.player_id:
        return []
    if len(player_id) > MAX_PLAYER_ID:
        return [f"{name_of(params, PLAYER_ID)} is longer than {MAX_PLAYER_ID} characters: ignored."]
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
    for key, raw in wanted.items():
        custom_field = known.get(key)
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
        CustomFieldValue.objects.update_or_create(
            client=client, field=custom_field, defaults={"value": stored}
        )
    return warnings


def post_system_message(conversion):
    goal, client = conversion.goal, conversion.client
    if not (client.spot.crm_enabled and goal.message_template.strip()):
        return None
    text = macros.render(goal.message_template, macros.conversion_context(conversion))
    return Message.objects.create(
        client=client, kind=Message.SYSTEM, text=text, conversion=conversion
    )


# -- replaying -------------------------------------------------------------

REPLAYABLE = (IncomingPostback.UNMATCHED, IncomingPostback.REJECTED)


def replay(row):
    """Process a stored unmatched or rejected postback again. Returns its
    Outcome, or None when the row is not replayable (any more)."""
    before = row.status
    # Claim it: of two simultaneous replays of one row only one proceeds.
    claimed = IncomingPostback.objects.filter(pk=row.pk, status__in=REPLAYABLE).update(
        status=IncomingPostback.RECEIVED
    )
    if not claimed:
        return None
    row.refresh_from_db()
    body = row.body
    outcome = run(row, row.query, body)
    note = f"Replayed {timezone.now():%Y-%m-%d %H:%M:%S} (was {before})."
    row.warnings = "\n".join(filter(None, [row.warnings, note]))
    row.save(update_fields=["warnings"])
    return outcome

"""Reading an incoming postback's parameters, in either dialect of the seeds.

Every reader raises Rejected with a message naming the parameter, which the
endpoint answers as a 4xx; nothing here touches the database but the spot's
partners and goals.
"""

import json
import logging
import re
from urllib.parse import parse_qsl

from crm import values
from crm.values import clean_text
from tracker.models import CONVERSION_STATUSES, parse_status_map

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


# A value that is a network's macro as written in the postback URL, not filled
# in: {sub1}, {{clickid}}, [SUBID], %subid%, ##clickid##, $clickid, ${clickid},
# <clickid>. Networks leave them when the click carried no value for them.
MACRO = re.compile(
    r"""^(?:
        \{\{?\s*[a-z_][\w.\-]*\s*\}?\}
      | \[\[?\s*[a-z_][\w.\-]*\s*\]?\]
      | %[a-z_][\w.\-]*%
      | \#\#?[a-z_][\w.\-]*\#\#?
      | \$\{?[a-z_][\w.\-]*\}?
      | <[a-z_][\w.\-]*>
    )$""",
    re.I | re.X,
)
# What each parameter that decides a conversion means, for the message.
MEANINGS = [
    (CLICK_ID, "the click id"),
    (EVENT, "the event"),
    (AMOUNT, "the amount"),
    (CURRENCY, "the currency"),
    (TID, "the transaction id"),
    (STATUS, "the status"),
]


class Rejected(Exception):
    """Bad input: answered with `http_status` and this message."""

    def __init__(self, http_status, message):
        super().__init__(message)
        self.http_status = http_status
        self.message = message


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
        data = values.load_json(text)
    except values.RefusedJSON as e:
        raise Rejected(400, f"The JSON body {e}.") from e
    except ValueError as e:
        raise Rejected(400, f"The body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise Rejected(400, "The JSON body must be an object of parameters.")
    pairs = []
    # load_json bounds the nesting, so this walk stays far from the recursion limit.
    flatten(data, "", pairs)
    if len(pairs) > MAX_FIELDS:
        raise Rejected(400, f"The body has more than {MAX_FIELDS} parameters.")
    return pairs


def flatten(data, prefix, pairs):
    # {"tracker": {"event": "sale"}} is tracker.event=sale, as in the query dialect.
    # load_json has cleaned every string already.
    for key, value in data.items():
        name = f"{prefix}{key}".strip().lower()
        if isinstance(value, dict):
            flatten(value, name + ".", pairs)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is None:
            pairs.append((name, ""))
        elif isinstance(value, str | int | float):
            pairs.append((name, str(value).strip()))
        else:
            pairs.append((name, json.dumps(value)))


def pick(params, names):
    for name in names:
        if params.get(name):
            return params[name]
    return ""


def name_of(params, names):
    """The parameter name the caller used (for error messages)."""
    return next((n for n in names if params.get(n)), names[0])


def is_macro(value):
    return bool(MACRO.match(value.strip()))


def refuse_macros(params, partner=None):
    """A parameter that decides the conversion and holds an unfilled macro is
    refused at once: a click id of '{sub1}' would otherwise wait for a client
    that never comes, a tid of '{id}' make every later deposit its duplicate."""
    meanings = list(MEANINGS)
    if partner is not None and partner.click_id_param:
        meanings.append(([partner.click_id_param.lower()], "the click id"))
    for names, meaning in meanings:
        for name in names:
            value = params.get(name, "")
            if value and is_macro(value):
                raise Rejected(
                    400,
                    f"{name} is {value[:100]!r}, an unreplaced macro of the network: the "
                    f"network did not fill in {meaning}. Check the macro's name in the postback "
                    "URL set at the network.",
                )


def find_partner(spot, params):
    slug = params.get("partner", "")
    if not slug:
        return None
    loaded = getattr(spot, "loaded_partners", None)  # read with the spot (incoming/spots.py)
    partners = loaded if loaded is not None else list(spot.partners.order_by("slug"))
    partner = next((p for p in partners if p.slug == slug), None)
    if partner is None:
        known = ", ".join(p.slug for p in partners) or "none"
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
        400,
        f"Unknown event {word[:100]!r} in {name_of(params, EVENT)}: use {words(accepted)}, or "
        "add a goal with this token on the spot page.",
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

"""How leads become clients: parsing a click's parameters and a bot's JSON."""

import ipaddress
import re

from crm import spend
from crm.models import ADVERT_KEYS, Client
from crm.values import RefusedJSON, clean_text, load_json, shown
from tracker.addresses import client_addr
from tracker.models import Spot
from tracker.retry import retry_transaction

# Ad networks' click ids and browser cookies, each stored in the Client column
# named first, from the first of these query parameters (or, for the
# underscored names, cookies of the tracker's domain) that is given. The
# parameters stay in params as well, for reports and {params__X} macros.
MATCH_KEYS = {
    "fbclid": ("fbclid",),
    "fbc": ("_fbc", "fbc"),
    "fbp": ("_fbp", "fbp"),
    "ttclid": ("ttclid",),
    "gclid": ("gclid",),
    "ga": ("_ga", "ga"),
    "yclid": ("yclid",),
    "ym_uid": ("_ym_uid", "ym_uid"),
}
MATCH_NAMES = {name: key for key, names in MATCH_KEYS.items() for name in names}
MAX_PARAMS = 100
MAX_NAME = 200
MAX_VALUE = 2000


class BadInput(ValueError):
    """Input a caller must fix; the message names the problem."""


def _limit(model_field, value):
    return str(value)[: Client._meta.get_field(model_field).max_length]


def split_params(pairs):
    """(name, value) pairs of a click -> (Client field values, params dict)."""
    fields, params = {}, {}
    for name, value in pairs:
        name, value = clean_text(name)[:MAX_NAME], clean_text(value)
        if name.startswith("advert__") and name[len("advert__") :] in ADVERT_KEYS:
            key = f"advert_{name[len('advert__') :]}"
            fields[key] = _limit(key, value)
        elif name in ("cl_id", "geo"):
            fields[name] = _limit(name, value.upper() if name == "geo" else value)
        else:
            if name in MATCH_NAMES:
                fields.setdefault(MATCH_NAMES[name], _limit(MATCH_NAMES[name], value))
            # utm_*, fbclid, ttclid, gclid and anything else the link carried.
            params[name] = value[:MAX_VALUE]
    if len(params) > MAX_PARAMS:
        raise BadInput(f"Too many parameters (more than {MAX_PARAMS}).")
    return fields, params


def browser_fields(request):
    """What the click's request itself says of the browser: its address (through
    PROXY_HOPS), user agent, page, and the ad networks' cookies it carries."""
    fields = {
        "ip": client_addr(request),
        "user_agent": _limit("user_agent", clean_text(request.META.get("HTTP_USER_AGENT", ""))),
        "page_url": _limit("page_url", clean_text(request.META.get("HTTP_REFERER", ""))),
    }
    for name, key in MATCH_NAMES.items():
        value = request.COOKIES.get(name) if name.startswith("_") else None
        if value and key not in fields:
            fields[key] = _limit(key, clean_text(value))
    return fields


def client_from_click(spot, pairs, request=None):
    """The click's client, inserted and committed alone (one write, autocommitted):
    its click id exists before the redirect. Its count, manager, cost, lead event
    and waiting postbacks are the workers' (postbacks/incoming/settling.py)."""
    fields, params = split_params(pairs)
    if request is not None:
        # A value in the link wins over the cookie: the landing passed it on purpose.
        fields = {**browser_fields(request), **fields}
    client = Client(spot=spot, params=params, settled=False, **fields)
    client.save(force_insert=True)
    return client


@retry_transaction
def register_client(spot, user_id, fields, cost=None):
    """The bot's client of this Telegram user, made unless it exists -> (client, created)."""
    # The spot's row lock makes get-or-create safe against a bot's double send.
    # FOR NO KEY UPDATE, not FOR UPDATE: a click of the spot checks its foreign
    # key at commit with FOR KEY SHARE on the spot's row, which FOR UPDATE
    # blocks; a click holding rollup rows and waiting for it, while this
    # waits for the same rollup rows, was a deadlock.
    Spot.objects.select_for_update(no_key=True).filter(pk=spot.pk).exists()
    client = Client.objects.filter(spot=spot, user_id=user_id).order_by("pk").first()
    if client is not None:
        return client, False
    client = Client.objects.create(spot=spot, user_id=user_id, **fields)
    if cost:  # only a new client's: a bot's repeated send is not a second click
        spend.add_client_cost(client, cost)
    return client, True


TEXT_FIELDS = {"username": "username", "name": "name", "geo": "geo", "cl_id": "cl_id"}
# The browser's data a bot got from its landing: the same columns as a click's.
TEXT_FIELDS.update({k: k for k in ("user_agent", "page_url", *MATCH_KEYS)})
# A Telegram user id as text: ASCII digits that fit a bigint, checked before int().
USER_ID_TEXT = re.compile(r"-?[0-9]{1,19}")


def read_bot_json(raw):
    """The body of POST /api/clients as storable data; raises BadInput."""
    try:
        return load_json(raw or b"null")
    except RefusedJSON as e:
        raise BadInput(f"The JSON body {e}.") from e
    except ValueError as e:  # not JSON, or not UTF-8/16/32
        raise BadInput("The body is not valid JSON.") from e


def parse_bot_client(data):
    """Validate the JSON of POST /api/clients -> (user_id, Client field values)."""
    if not isinstance(data, dict):
        raise BadInput("The body must be a JSON object.")
    user_id = data.get("user_id")
    if isinstance(user_id, str) and USER_ID_TEXT.fullmatch(user_id.strip()):
        user_id = int(user_id)
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise BadInput("user_id is required and must be an integer (the Telegram user id).")
    if not -(2**63) <= user_id < 2**63:
        raise BadInput("user_id is out of range.")
    fields = {}
    for key, model_field in TEXT_FIELDS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BadInput(f"{key} must be a string.")
        value = str(value)
        limit = Client._meta.get_field(model_field).max_length
        if len(value) > limit:
            raise BadInput(f"{key} is longer than {limit} characters.")
        fields[model_field] = value.upper() if key == "geo" else value
    ip = data.get("ip")
    if ip not in (None, ""):
        try:
            fields["ip"] = str(ipaddress.ip_address(str(ip).strip()))
        except ValueError:
            raise BadInput(f"ip is not an IP address: {shown(ip)}.") from None
    advert = data.get("advert") or {}
    if not isinstance(advert, dict):
        raise BadInput("advert must be an object of " + ", ".join(ADVERT_KEYS) + ".")
    for key, value in advert.items():
        if key not in ADVERT_KEYS:
            raise BadInput(f"advert.{key[:100]} is not known. Known: {', '.join(ADVERT_KEYS)}.")
        if not isinstance(value, str | int | float | None) or isinstance(value, bool):
            raise BadInput(f"advert.{key} must be a string, not {shown(value)}.")
        fields[f"advert_{key}"] = _limit(f"advert_{key}", "" if value is None else value)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise BadInput("params must be an object of names and values.")
    if len(params) > MAX_PARAMS:
        raise BadInput(f"params has more than {MAX_PARAMS} entries.")
    fields["params"] = {str(k): v for k, v in params.items()}
    return user_id, fields

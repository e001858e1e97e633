"""Single-brace macros: {click_id}, {sum}, {fields__X} ...

Used by system messages, external postbacks and outgoing postbacks. A
template is rendered in one pass over it, so a value that itself contains
"{x}" is never expanded again; each value goes through `escape`, which the
caller picks for where the text lands (URL, form body, JSON, XML).
"""

import datetime
import re
from decimal import Decimal
from urllib.parse import quote, urlsplit

from django.contrib.auth import get_user_model
from django.utils import timezone

from crm import values
from crm.models import ADVERT_KEYS, Client, Conversion
from tracker.macros import (  # noqa: F401 - re-exported: crm.macros is where callers look
    ADVERT,
    ALIASES,
    KNOWN,
    MACRO_RE,
    MEANINGLESS,
    OWN,
    PLAIN,
    PREFIXES,
    is_known,
    macro_error,
    unknown_macros,
    validate_macros,
)
from tracker.models import Goal, Partner


class Lazy:
    """A value read only when something prints it. The partner's slug and name
    cost a query, and a batch renders thousands of events that never name them."""

    def __init__(self, read):
        self.read, self.value = read, None

    def __str__(self):
        if self.value is None:
            self.value = str(self.read() or "")
        return self.value

    def __bool__(self):
        return bool(str(self))


def _partner(client, attribute):
    """The slug or name of the client's partner (who reported its conversions)."""
    if client.partner_id is None:
        return ""
    return Lazy(lambda: getattr(client.partner, attribute))


def _host(url):
    return urlsplit(url or "").hostname or ""


def client_context(client, attributed=True):
    """The macros a client alone gives. Without attribution the advert macros are empty."""
    params = client.params or {}
    fields = client.field_values()
    ctx = {
        "id": str(client.pk),
        "click_id": client.click_id,
        "cl_id": client.cl_id,
        "geo": client.geo,
        "user_id": "" if client.user_id is None else str(client.user_id),
        "username": client.username,
        "name": client.name,
        "player_id": client.player_id,
        "manager": client.manager.get_username() if client.manager_id else "",
        "spot": client.spot.name,
        "now": str(int(timezone.now().timestamp())),
        "ip": client.ip or "",
        "ua": client.user_agent,
        "page_url": client.page_url,
        "ReferringDomain": _host(client.page_url),
        "fbclid": client.fbclid,
        "fbc": client.facebook_fbc,
        "fbp": client.fbp,
        "ttclid": client.ttclid,
        "gclid": client.gclid,
        # Seed 001's lead form sends it; a client has no phone column, so it is
        # the phone custom field, else the phone entry parameter.
        "phone": str(fields.get("phone") or params.get("phone") or ""),
        "MediaPartnerId": _partner(client, "slug"),
        "MediaPartnerName": _partner(client, "name"),
    }
    for key in ADVERT_KEYS:
        ctx[f"advert__{key}"] = getattr(client, f"advert_{key}") if attributed else ""
    for key, value in params.items():
        ctx[f"params__{key}"] = "" if value is None else str(value)
    for key, value in fields.items():
        ctx[f"fields__{key}"] = value
    return with_aliases(ctx)


def with_aliases(ctx):
    """`ctx` with other trackers' names for the values it has."""
    for alias, name in ALIASES.items():
        if name in ctx:
            ctx[alias] = ctx[name]
    return ctx


def conversion_context(conversion, attributed=True):
    """Every macro of a conversion: its client's, and the event's own."""
    ctx = client_context(conversion.client, attributed)
    created = conversion.created or timezone.now()
    # A delivery's event (a later status change, say) has a time of its own.
    happened = getattr(conversion, "event_time", None) or created
    ctx.update(
        {
            "action": conversion.goal.token,
            "goal": conversion.goal.name,
            "sum": values.money(conversion.amount),
            # A target's payout share scales {sum} (postbacks.delivery.render), never this.
            "sum_original": values.money(conversion.amount),
            "currency": conversion.currency,
            "tid": conversion.tid,
            "status": conversion.status,
            "conversion_id": str(conversion.pk),
            "previous_status": "",
            "previous_sum": "",
            "StatusDetail": "",
            "EventDate": iso_time(happened),
            "CreationDate": iso_time(created),
        }
    )
    at = getattr(conversion, "event_time", None)  # a delivery's: when its event happened
    if at is not None:
        ctx["now"] = str(int(at.timestamp()))
    before = Decimal(0)  # a new conversion changes the amount from nothing
    change = getattr(conversion, "change", None)  # set by a status or amount change
    if change is not None:
        ctx["previous_status"], ctx["previous_sum"] = change[0], values.money(change[1])
        ctx["StatusDetail"] = f"{change[0]} -> {conversion.status}"
        before = Decimal(change[1] or 0)
    ctx["DeltaPayout"] = ctx["DeltaAmount"] = values.money(Decimal(conversion.amount) - before)
    return with_aliases(ctx)


def iso_time(at):
    return at.astimezone(datetime.UTC).isoformat(timespec="seconds")


def sample_context(spot, templates=""):
    """The macros of a made-up status change of a made-up client of `spot`,
    every one with a value: what a preview shows before a real conversion is
    picked. The {params__X} and {fields__X} that `templates` name get one too."""
    named = dict.fromkeys(re.findall(r"\b(params|fields)__(\w+)", templates or ""))
    fields = {key: _sample_field(spot, key) for kind, key in named if kind == "fields"}
    params = {key: f"sample-{key}" for kind, key in named if kind == "params"}
    client = Client(
        pk=1,
        spot=spot,
        click_id="0123456789abcdef0123456789abcdef",
        cl_id="tracker-click-1",
        user_id=123456789,
        username="sample_user",
        name="Sample Client",
        geo="DE",
        player_id="player-1",
        params={"phone": "+49 30 1234567", **params},
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (sample)",
        page_url="https://landing.example/offer",
        fbclid="sample-fbclid",
        fbc="fb.1.1700000000000.sample-fbclid",
        fbp="fb.1.1700000000000.123456789",
        ttclid="sample-ttclid",
        gclid="sample-gclid",
        **{f"advert_{key}": f"{key.replace('_', '-')}-1" for key in ADVERT_KEYS},
    )
    client.manager = get_user_model()(pk=1, **{get_user_model().USERNAME_FIELD: "manager"})
    client.partner = Partner(pk=1, spot=spot, slug="sample-partner", name="Sample Partner")
    client.loaded_field_values = fields
    goal = Goal(pk=1, spot=spot, token="dep", name="First deposit")
    conversion = Conversion(
        pk=1,
        spot=spot,
        client=client,
        goal=goal,
        amount=Decimal("100"),
        currency="USD",
        tid="sample-tid-1",
        status="approved",
        created=timezone.now(),
    )
    conversion.change = ("pending", Decimal("80"))
    return conversion_context(conversion)


def _sample_field(spot, key):
    kinds = {f.key: f.type for f in spot.custom_fields.all()} if spot.pk else {}
    samples = {"number": "42", "money": "100.00", "date": "2024-05-01", "boolean": "true"}
    return samples.get(kinds.get(key), f"sample-{key}")


def url_escape(value):
    """A value inside a URL: every reserved character percent-encoded."""
    return quote(str(value), safe="")


def render(template, ctx, escape=str, pattern=MACRO_RE, known=is_known):
    """Replace every macro in one pass; a macro without a value becomes empty.

    `pattern` and `known` default to the single-brace macros; registration
    links pass their double-brace ones (crm.links).
    """

    def value(match):
        name = match.group(1)
        if name in ctx:
            return escape(ctx[name])
        if known(name):
            return escape("")
        return match.group(0)  # not a macro of ours: {"json": ...} braces stay

    return pattern.sub(value, template or "")

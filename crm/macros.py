"""Single-brace macros: {click_id}, {sum}, {fields__X} ...

Used by system messages, external postbacks and outgoing postbacks. A
template is rendered in one pass over it, so a value that itself contains
"{x}" is never expanded again; each value goes through `escape`, which the
caller picks for where the text lands (URL, form body, JSON, XML).
"""

from urllib.parse import quote

from django.utils import timezone

from crm import values
from crm.models import ADVERT_KEYS
from tracker.macros import (  # noqa: F401 - re-exported: crm.macros is where callers look
    ADVERT,
    ALIASES,
    KNOWN,
    MACRO_RE,
    PLAIN,
    PREFIXES,
    is_known,
    unknown_macros,
    validate_macros,
)


def client_context(client, attributed=True):
    """The macros a client alone gives. Without attribution the advert macros are empty."""
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
        "fbclid": client.fbclid,
        "fbc": client.facebook_fbc,
        "fbp": client.fbp,
        "ttclid": client.ttclid,
        "gclid": client.gclid,
    }
    for key in ADVERT_KEYS:
        ctx[f"advert__{key}"] = getattr(client, f"advert_{key}") if attributed else ""
    for alias, name in ALIASES.items():
        ctx[alias] = ctx[name]
    for key, value in (client.params or {}).items():
        ctx[f"params__{key}"] = "" if value is None else str(value)
    for key, value in client.field_values().items():
        ctx[f"fields__{key}"] = value
    return ctx


def conversion_context(conversion, attributed=True):
    """Every macro of a conversion: its client's, and the event's own."""
    ctx = client_context(conversion.client, attributed)
    ctx.update(
        {
            "action": conversion.goal.token,
            "goal": conversion.goal.name,
            "sum": values.money(conversion.amount),
            "currency": conversion.currency,
            "tid": conversion.tid,
            "status": conversion.status,
            "conversion_id": str(conversion.pk),
            "previous_status": "",
            "previous_sum": "",
        }
    )
    change = getattr(conversion, "change", None)  # set by a status or amount change
    if change is not None:
        ctx["previous_status"], ctx["previous_sum"] = change[0], values.money(change[1])
    return ctx


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

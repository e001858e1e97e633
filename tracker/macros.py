"""The names of the single-brace macros, and the validator that refuses others.

They live in the lowest layer because goals (tracker) validate their
templates; crm.macros renders them and re-exports these names.
"""

import re

from django.core.exceptions import ValidationError

# The ad attribution of seed 002, stored as advert_<key> columns on the client
# and offered as {advert__<key>} macros.
ADVERT_KEYS = [
    "pixel",
    "campaign_id",
    "adset_id",
    "ad_id",
    "campaign_name",
    "adset_name",
    "ad_name",
    "placement",
    "site_source_name",
    "landing_id",
]

MACRO_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

PLAIN = [
    "click_id",
    "cl_id",
    "action",
    "goal",
    "sum",
    # The conversion's own amount: {sum} is the payout share of it.
    "sum_original",
    "currency",
    "tid",
    "status",
    "previous_status",
    "previous_sum",
    "geo",
    "user_id",
    "username",
    "name",
    "player_id",
    "manager",
    "now",
    "conversion_id",
    "spot",
    # What ad networks match on, from the click or the bot API.
    "ip",
    "ua",
    "page_url",
    "fbclid",
    "fbc",
    "fbp",
    "ttclid",
    "gclid",
]
# Other trackers' names, so their examples paste as written; each one means a
# macro of ours. Seed 001: {click} our click id, {adid} the ad id ({id}, the
# client's id, is below). Seed 004 (impact.com), in its own case: {CampaignId}
# is accepted, {campaignid} is not.
ALIASES = {
    "click": "click_id",
    "adid": "advert__ad_id",
    "CampaignId": "advert__campaign_id",
    "CampaignName": "advert__campaign_name",
    "ActionTrackerId": "action",
    "ActionTrackerName": "goal",
    "ActionId": "conversion_id",
    "Status": "status",
    "AdId": "advert__ad_id",
    "Payout": "sum",
    "Amount": "sum",
    # Nothing caps a payout here: the intended amount is the amount.
    "IntendedPayout": "sum",
    "IntendedAmount": "sum",
    # Amounts go out as the partner reported them, never converted (nor shared).
    "OriginalAmount": "sum_original",
    "Currency": "currency",
    "OriginalCurrency": "currency",
    "RefCustomerCountry": "geo",
    "CustomerCountry": "geo",
    "RefClickId": "click_id",
    # The value the traffic source put in the click: its own click id.
    "SharedId": "cl_id",
    "Oid": "tid",
    "LandingPageUrl": "page_url",
    "deviceIp": "ip",
    "IpAddressPlain": "ip",
    "UserAgent": "ua",
}
# Other trackers' names with a value of their own (crm.macros builds them).
OWN = [
    "id",  # the client's id (seed 001)
    "phone",  # seed 001: the client's phone field, else its phone entry parameter
    "MediaPartnerId",  # the client's partner (its slug)
    "MediaPartnerName",
    "StatusDetail",  # what changed: "pending -> approved"
    "DeltaPayout",  # the amount minus the amount before this event
    "DeltaAmount",
    "EventDate",  # ISO 8601 time of the conversion
    "CreationDate",
    "ReferringDomain",  # the host of the page the click came from
]

_NO_PLACE = "the tracker keeps the client's country ({geo}) and resolves no place from the IP"
_NO_ADDRESS = (
    "no address comes with a conversion; a value the partner sends as fields.KEY is {fields__KEY}"
)
_NO_SLOTS = (
    "a conversion carries named custom fields, not numbered slots: write {fields__KEY} "
    "(or {params__KEY} for an entry parameter)"
)
_NO_DEVICE = (
    "clients come from bots and landings, and no app SDK reports apps or devices "
    "(the browser's {ip} and {ua} are known)"
)
# Names of seed 004 that mean nothing here: refused, saying why, rather than
# sent empty for ever.
MEANINGLESS = {
    "LockingDate": "conversions are not locked on a schedule; a chargeback comes as a "
    "status change ({status}, {previous_status})",
    "ClearedDate": "conversions are not cleared on a schedule; a chargeback comes as a "
    "status change ({status}, {previous_status})",
    "RefCustomerArea": _NO_PLACE,
    "RefCustomerCity": _NO_PLACE,
    "RefCustomerRegion": _NO_PLACE,
    "CustomerPostCode": _NO_ADDRESS,
    "CustomerCity": _NO_ADDRESS,
    "CustomerRegion": _NO_ADDRESS,
    "CustomerStatus": "a client has no customer status; {action} tells a first deposit (dep) "
    "from a repeat one (redep)",
    "PromoCode": "no promo code comes with a conversion; one the partner sends as "
    "fields.KEY is {fields__KEY}",
    "Note": "no note comes with a conversion; one the partner sends as fields.KEY is {fields__KEY}",
    **{f"{kind}{n}": _NO_SLOTS for kind in ("Text", "Date", "Money", "Numeric") for n in (1, 2, 3)},
    **dict.fromkeys(
        [
            "appPackage",
            "appName",
            "appVersion",
            "deviceOs",
            "deviceOsVersion",
            "deviceManuf",
            "deviceModel",
            "macAddress",
            "iosIfa",
            "iosAdTracking",
            "androidId",
            "odin1",
            "openUdid",
            "deviceId",
        ],
        _NO_DEVICE,
    ),
}
# Seed 004's item-level expressions, {join(items, i, "sku{i}={i.sku}", "&", "?")}.
JOIN_RE = re.compile(r"""\{join\((?:[^()"]|"[^"]*")*\)\}""")

OURS = list(PLAIN)
PLAIN += [*ALIASES, *OWN]
ADVERT = [f"advert__{key}" for key in ADVERT_KEYS]
KNOWN = PLAIN + ADVERT
PREFIXES = ("params__", "fields__")
_BY_LOWER = {name.lower(): name for name in KNOWN}


def is_known(name):
    return name in KNOWN or (name.startswith(PREFIXES) and len(name) > len("params__"))


def unknown_macros(template):
    """Names in `template` that are not macros, in order, each once."""
    seen = []
    for name in MACRO_RE.findall(JOIN_RE.sub("", template or "")):
        if not is_known(name) and name not in seen:
            seen.append(name)
    return seen


def macro_error(template, known_hint):
    """Why `template` names macros we cannot fill, each named, or None.

    A name that means nothing here says why; a name in another case than
    ours is pointed to ours; `known_hint` ends the message about the rest."""
    parts = []
    for expression in dict.fromkeys(JOIN_RE.findall(template or "")):
        short = expression if len(expression) <= 40 else expression[:37] + "...}"
        parts.append(f"{short} has no meaning here: a conversion has no items (no cart).")
    unknown = unknown_macros(template)
    for name in unknown:
        if name in MEANINGLESS:
            parts.append(f"{{{name}}} has no meaning here: {MEANINGLESS[name]}.")
    rest = [n for n in unknown if n not in MEANINGLESS]
    if rest:
        hints = [
            f"{{{n}}} is written {{{_BY_LOWER[n.lower()]}}}" for n in rest if n.lower() in _BY_LOWER
        ]
        braced = ", ".join(f"{{{n}}}" for n in rest)
        hint = f" ({'; '.join(hints)})" if hints else ""
        parts.append(f"Unknown macro {braced}{hint}. {known_hint}")
    return " ".join(parts) or None


def validate_macros(template):
    """A model-field validator: refuses a template with an unknown macro, naming it."""
    known = ", ".join(f"{{{n}}}" for n in OURS + ADVERT)
    message = macro_error(
        template,
        f"Known: {known}, {{params__X}}, {{fields__X}}, and other trackers' names "
        "such as {click}, {id}, {phone}, {CampaignId}, {Payout} (see the README).",
    )
    if message:
        raise ValidationError(message)

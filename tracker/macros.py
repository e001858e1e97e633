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
    "fbclid",
    "fbc",
    "fbp",
    "ttclid",
    "gclid",
]
# Other trackers' names (seed 001), so their examples paste as written:
# {click} our click id, {id} the client's id, {adid} the ad id.
ALIASES = {"click": "click_id", "adid": "advert__ad_id"}
PLAIN += [*ALIASES, "id"]
ADVERT = [f"advert__{key}" for key in ADVERT_KEYS]
KNOWN = PLAIN + ADVERT
PREFIXES = ("params__", "fields__")


def is_known(name):
    return name in KNOWN or (name.startswith(PREFIXES) and len(name) > len("params__"))


def unknown_macros(template):
    """Names in `template` that are not macros, in order, each once."""
    seen = []
    for name in MACRO_RE.findall(template or ""):
        if not is_known(name) and name not in seen:
            seen.append(name)
    return seen


def validate_macros(template):
    """A model-field validator: refuses a template with an unknown macro, naming it."""
    unknown = unknown_macros(template)
    if unknown:
        braced = ", ".join(f"{{{n}}}" for n in unknown)
        known = ", ".join(f"{{{n}}}" for n in KNOWN)
        raise ValidationError(
            f"Unknown macro {braced}. Known: {known}, {{params__X}}, {{fields__X}}."
        )

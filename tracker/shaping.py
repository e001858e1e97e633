"""Shaping what a target (an outgoing postback, a pixel) receives: the pure
parts that forms, rendering and fan-out share.

The send share's counter, the payout share's rounding per currency, and the
conditions' patterns and country lists. postbacks.delivery.fanout decides
with these; the admin forms check them with `errors`.
"""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Minor units per currency (ISO 4217) where they are not 2: a shared payout
# is rounded to what the currency can be paid in, so 70% of 999 JPY is 699,
# not 699.30.
CURRENCY_PLACES = {
    # No minor unit.
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # Thousandths.
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}
DEFAULT_PLACES = 2


def places(currency):
    return CURRENCY_PLACES.get((currency or "").upper(), DEFAULT_PLACES)


def share_of(amount, percent, currency):
    """`percent` of `amount`, rounded half up to the places `currency` has."""
    exact = Decimal(amount or 0) * Decimal(percent) / 100
    return exact.quantize(Decimal(1).scaleb(-places(currency)), rounding=ROUND_HALF_UP)


def amount_text(amount, currency):
    """A shared amount as sent: with exactly the currency's places (35.00, 699, 1.235)."""
    return f"{Decimal(amount):.{places(currency)}f}"


def shared_text(text, percent, currency):
    """A macro's amount text ("50.00") scaled by `percent`; empty stays empty."""
    if text in ("", None):
        return text
    try:
        return amount_text(share_of(Decimal(str(text)), percent, currency), currency)
    except InvalidOperation:
        return text


# -- the send share --------------------------------------------------------


def share_sends(percent, n):
    """Whether the n-th qualifying event (from 1) is sent at `percent`.

    By a counter, not by chance: after n events ceil(n * percent / 100) have
    been sent, so at 50% the 1st, 3rd, 5th ... go and the 2nd, 4th ... do not;
    at 70% seven of every ten, the first always among them."""
    return sent_after(percent, n) > sent_after(percent, n - 1)


def sent_after(percent, n):
    """How many of the first n qualifying events a share of `percent` sends."""
    return -(-n * percent // 100)  # ceil without floats


SHARE_PREFIX = "Skipped by share"


def share_reason(percent, n):
    """The counter's state, on a delivery the share skipped."""
    return (
        f"{SHARE_PREFIX}: event {n} of this goal here, "
        f"{sent_after(percent, n)} of {n} sent at {percent}%."
    )


# -- conditions --------------------------------------------------------------

# What a campaign pattern may hold besides * and ?: a regular expression's or
# a shell's other characters would read as something they do not do here.
PATTERN_REFUSED = re.compile(r"[\[\](){}^$\\|+]")


def parse_geos(text):
    """'us, DE;fr' -> ['US', 'DE', 'FR']."""
    return [g.upper() for g in re.split(r"[\s,;]+", text or "") if g]


def geos_error(text):
    bad = [g for g in parse_geos(text) if not re.fullmatch(r"[A-Z]{2}", g)]
    if bad:
        return (
            f"{bad[0]!r} is not a country code: write two letters per country, comma "
            "separated (US, DE, GB)."
        )
    return None


def parse_patterns(text):
    """'fb_*, tt_*' -> ['fb_*', 'tt_*']: a campaign matching any one passes."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def pattern_error(text):
    for pattern in parse_patterns(text):
        found = PATTERN_REFUSED.search(pattern)
        if found:
            return (
                f"{pattern!r}: {found.group(0)!r} is not a pattern character here. Write * for "
                "any characters and ? for one (fb_*, *_us_?), several patterns comma separated."
            )
    if (text or "").strip() and not parse_patterns(text):
        return "Write a pattern such as fb_*, or leave it empty for any campaign."
    return None


def _regex(pattern):
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def pattern_matches(text, value):
    """Whether `value` matches one of the comma-separated patterns, whole and
    in any case ('fb_*' matches 'FB_spring', not 'old_fb_spring')."""
    return any(_regex(p).fullmatch(value or "") for p in parse_patterns(text))


def errors(min_amount=None, max_amount=None, geos="", campaign_pattern=""):
    """{field: message} of shaping settings that can never mean what they say."""
    found = {}
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        found["max_amount"] = (
            f"The maximum ({max_amount}) is below the minimum ({min_amount}): no event "
            "would ever be sent."
        )
    for name, message in (
        ("geos", geos_error(geos)),
        ("campaign_pattern", pattern_error(campaign_pattern)),
    ):
        if message:
            found[name] = message
    return found

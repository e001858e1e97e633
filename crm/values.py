"""Parsing of values that arrive as text: amounts, currencies, field values, JSON.

Text from outside passes `clean_text` on its way to the database, and numbers
are refused by length before they are parsed, so no input can make a query
fail or a parser run away.
"""

import datetime
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

# Amounts keep 8 decimal places: crypto payouts and fractional-cent CPA rates.
AMOUNT_PLACES = 8
QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("99999999999999999999.99999999")  # Conversion.amount: 28 digits, 8 places
MIN_RATE = Decimal("0.000000000001")  # ExchangeRate.rate: 12 places
# Characters of a number's text. Longer is refused before parsing: a million
# digits overflow Decimal's context as soon as they are rounded, and no
# amount, id or field value needs a hundred.
MAX_NUMBER = 100
# Nesting of a JSON body: parameters and bot payloads are flat, a few levels
# leave room; the limit also keeps every walk over the data far from Python's
# recursion limit.
MAX_DEPTH = 20

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
# PostgreSQL text and jsonb cannot hold NUL, and a lone surrogate (JSON's
# "\ud800") cannot be encoded as UTF-8 for any database.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text):
    """`text` as every database can store it: NUL and lone surrogates become
    U+FFFD; everything else, control characters included, is kept as it came."""
    return _UNSTORABLE.sub("\ufffd", text)


def shown(text, limit=40):
    """repr() of a value for an error message, cut when long."""
    s = str(text)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + "…"


class RefusedJSON(ValueError):
    """Valid JSON syntax with content we do not take; the message says what
    (it completes "The JSON body …")."""


def clean_data(data, depth=0):
    """Parsed JSON with every string (keys too) cleaned; raises RefusedJSON when
    it is nested deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise RefusedJSON(f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(data, str):
        return clean_text(data)
    if isinstance(data, dict):
        return {clean_text(k): clean_data(v, depth + 1) for k, v in data.items()}
    if isinstance(data, list):
        return [clean_data(v, depth + 1) for v in data]
    return data


def _refuse_constant(name):
    raise RefusedJSON(f"has {name}, which is not a number; send a number or a string")


def _int(text):
    if len(text) > MAX_NUMBER:
        raise RefusedJSON(f"has a number of {len(text)} digits (at most {MAX_NUMBER})")
    return int(text)


def _float(text):
    if len(text) > MAX_NUMBER:
        raise RefusedJSON(f"has a number of {len(text)} characters (at most {MAX_NUMBER})")
    value = float(text)
    if not math.isfinite(value):
        raise RefusedJSON(f"has the number {text}, which is out of range")
    return value


def load_json(raw):
    """A JSON document (text or bytes) as data the database can store.

    Raises ValueError (JSONDecodeError, UnicodeDecodeError) when it is not
    JSON, and RefusedJSON for NaN, Infinity, numbers out of range or too long,
    and nesting deeper than MAX_DEPTH (100,000 levels would otherwise be a
    RecursionError).
    """
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_int=_int, parse_float=_float)
    except RecursionError as e:
        raise RefusedJSON(f"is nested deeper than {MAX_DEPTH} levels") from e
    return clean_data(data)


def parse_decimal(text):
    """'12.50', '12,50', ' 1 000.5 ' -> Decimal; raises ValueError on anything else."""
    s = str(text).strip().replace(" ", "").replace("\u00a0", "")
    if len(s) > MAX_NUMBER:
        raise ValueError(f"{shown(text)} is not a number (over {MAX_NUMBER} characters)")
    if "," in s and "." not in s:
        s = s.replace(",", ".")  # a decimal comma, as European networks send it
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", s):
        raise ValueError(f"{shown(text)} is not a number")
    try:
        value = Decimal(s)
    except InvalidOperation as e:  # pragma: no cover - the regex already guards
        raise ValueError(f"{shown(text)} is not a number") from e
    return value


def parse_amount(text):
    """A money amount to 8 places; raises ValueError when not a number or too big."""
    value = parse_decimal(text)
    # Check before rounding: quantize() of a 30-digit number overflows the context.
    if abs(value) > MAX_AMOUNT:
        raise ValueError(f"{shown(text)} is too large an amount")
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def reporting_currency():
    return settings.REPORTING_CURRENCY


def plain(amount):
    """An amount as people write it: 12.5, not 12.50000000 nor 1.25E+1; '' for None."""
    if amount is None:
        return ""
    text = format(Decimal(amount).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def money(amount):
    """An amount with its decimals and at least cents (12.50, 0.00012345), as
    networks send them: what macros give back."""
    amount = Decimal(amount or 0).normalize()
    return format(amount, "f") if amount.as_tuple().exponent < -2 else f"{amount:.2f}"


def money_number(amount):
    """An amount for a person to read: 1,234.50. Stored amounts keep 8 places;
    a screen shows cents, except for a non-zero amount under a cent (a crypto
    payout), which keeps the places it needs rather than reading 0.00."""
    if amount is None:
        return ""
    amount = Decimal(amount)
    if amount and abs(amount) < CENT:
        return plain(amount)
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def money_text(amount, currency=""):
    """'1,234.50 USD': an amount and its currency, as screens show money; '' for None."""
    if amount is None:
        return ""
    number = money_number(amount)
    return f"{number} {currency}" if currency else number


def money_axis(amount):
    """A chart's grid value: whole units with thousands separators (12,000)."""
    return f"{Decimal(amount).quantize(Decimal(1), rounding=ROUND_HALF_UP):,}"


def count_text(n):
    """A count for a person to read: 12,345."""
    return "" if n is None else f"{n:,}"


def parse_currency(text):
    s = str(text).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", s):
        raise ValueError(f"{shown(text)} is not a three-letter currency code")
    return s


def parse_bool(text):
    s = str(text).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{shown(text)} is not yes or no")


def parse_date(text):
    """ISO dates, ISO date-times, DD.MM.YYYY and unix timestamps -> date."""
    s = str(text).strip()
    if re.fullmatch(r"\d{9,10}", s):
        return datetime.datetime.fromtimestamp(int(s), tz=datetime.UTC).date()
    m = re.fullmatch(r"(\d{1,2})[./](\d{1,2})[./](\d{4})", s)
    try:
        if m:
            return datetime.date(int(m[3]), int(m[2]), int(m[1]))
        if len(s) > 10:
            return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).date()
        return datetime.date.fromisoformat(s)
    except ValueError as e:
        raise ValueError(f"{shown(text)} is not a date") from e

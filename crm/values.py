"""Parsing of values that arrive as text: amounts, currencies, field values."""

import datetime
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("99999999999999.99")  # what Conversion.amount (16 digits, 2 places) holds

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_decimal(text):
    """'12.50', '12,50', ' 1 000.5 ' -> Decimal; raises ValueError on anything else."""
    s = str(text).strip().replace(" ", "").replace("\u00a0", "")
    if "," in s and "." not in s:
        s = s.replace(",", ".")  # a decimal comma, as European networks send it
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", s):
        raise ValueError(f"{text!r} is not a number")
    try:
        value = Decimal(s)
    except InvalidOperation as e:  # pragma: no cover - the regex already guards
        raise ValueError(f"{text!r} is not a number") from e
    return value


def parse_amount(text):
    """A money amount rounded to cents; raises ValueError when not a number or too big."""
    value = parse_decimal(text)
    # Check before rounding: quantize() of a 30-digit number overflows the context.
    if abs(value) > MAX_AMOUNT:
        raise ValueError(f"{text!r} is too large an amount")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_currency(text):
    s = str(text).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", s):
        raise ValueError(f"{text!r} is not a three-letter currency code")
    return s


def parse_bool(text):
    s = str(text).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{text!r} is not yes or no")


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
        raise ValueError(f"{text!r} is not a date") from e

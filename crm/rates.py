"""Exchange rates: converting amounts to the reporting currency, and reading rate files.

A rate says how many units of a currency one unit of the reporting currency
bought that day (the ECB's orientation: 1 EUR = 1.05 USD). An amount is
converted at the rate of its day, or the latest earlier one when that day has
none (weekends and holidays have no ECB fixing); with no rate at all it has
no reported amount, and is counted but flagged until rates arrive.

Files read by `manage.py import_rates`:

- the ECB's daily and historical CSV (eurofxref.csv, eurofxref-hist.csv): a
  `Date` column then one column per currency, rates per euro, `N/A` where a
  currency had none; converted to the reporting currency on each day that has
  a euro rate for it;
- a plain `date,currency,rate` CSV (header optional), rates already per unit
  of the reporting currency.
"""

import bisect
import csv
import datetime
from decimal import Context, Decimal

from crm import values
from crm.models import ExchangeRate

ZERO = Decimal("0")
# Wide enough for a 20-digit amount divided by a 12-place rate, before rounding.
EXACT = Context(prec=60)
MAX_RATE = Decimal(10) ** 18  # ExchangeRate.rate: 30 digits, 12 places


def rate_on(currency, day):
    """The rate of `currency` on `day` or the latest day before it; None if none."""
    return (
        ExchangeRate.objects.filter(
            base=values.reporting_currency(), currency=currency, day__lte=day
        )
        .order_by("-day")
        .values_list("rate", flat=True)
        .first()
    )


def to_reporting(amount, currency, day, rate=rate_on):
    """`amount` of `currency` in the reporting currency; None when no rate is known.

    A zero amount is zero in any currency, and the reporting currency needs no
    rate: neither costs a query.
    """
    amount = Decimal(amount or 0)
    if not amount or currency == values.reporting_currency():
        return amount
    found = rate(currency, day)
    if not found:
        return None
    converted = EXACT.divide(amount, Decimal(found)).quantize(values.QUANTUM, context=EXACT)
    return converted if abs(converted) <= values.MAX_AMOUNT else None


class RateTable:
    """Every rate of some currencies in memory, for converting many amounts at once."""

    def __init__(self, currencies):
        self.days, self.rates = {}, {}
        rows = (
            ExchangeRate.objects.filter(base=values.reporting_currency(), currency__in=currencies)
            .order_by("currency", "day")
            .values_list("currency", "day", "rate")
        )
        for currency, day, rate in rows:
            self.days.setdefault(currency, []).append(day)
            self.rates.setdefault(currency, []).append(rate)

    def rate_on(self, currency, day):
        i = bisect.bisect_right(self.days.get(currency, []), day)
        return self.rates[currency][i - 1] if i else None


# -- rate files ----------------------------------------------------------------


class BadFile(ValueError):
    pass


def read_file(stream, base):
    """Yield, per line, the [(day, currency, rate per unit of `base`)] of an ECB or plain CSV."""
    rows = csv.reader(stream)
    first = next(rows, None)
    if not first or not any(cell.strip() for cell in first):
        raise BadFile("The file is empty or its first line is blank.")
    head = [cell.strip().upper() for cell in first]
    wide = head[0] == "DATE" and (len(head) < 2 or head[1] != "CURRENCY")
    # One item per line, the header's empty: a progress bar counts lines.
    yield [] if head[0] == "DATE" else [plain_row(first, 1)]
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            yield []
        elif wide:
            yield list(ecb_row(head[1:], row, line, base))
        else:
            yield [plain_row(row, line)]


def ecb_row(currencies, row, line, base):
    day = parse_day(row[0], line)
    per_euro = {"EUR": Decimal(1)}
    for currency, cell in zip(currencies, row[1:], strict=False):
        cell = cell.strip()
        if currency and cell and cell.upper() != "N/A":
            per_euro[currency] = parse_rate(cell, line)
    if base not in per_euro:
        return  # no euro rate for the reporting currency that day: nothing to derive
    for currency, rate in per_euro.items():
        if currency != base:
            yield day, currency, EXACT.divide(rate, per_euro[base])


def plain_row(row, line):
    if len(row) < 3:
        raise BadFile(f"Line {line}: expected date,currency,rate.")
    try:
        currency = values.parse_currency(row[1])
    except ValueError as e:
        raise BadFile(f"Line {line}: {e}.") from e
    return parse_day(row[0], line), currency, parse_rate(row[2], line)


def parse_day(text, line):
    text = text.strip()
    for form in ("%Y-%m-%d", "%d %B %Y"):  # historical file, daily file
        try:
            return datetime.datetime.strptime(text, form).date()
        except ValueError:
            pass
    raise BadFile(f"Line {line}: {text[:40]!r} is not a date (2026-12-04 or 04 December 2026).")


def parse_rate(text, line):
    try:
        rate = values.parse_decimal(text)
    except ValueError as e:
        raise BadFile(f"Line {line}: the rate {e}.") from e
    if not values.MIN_RATE <= rate < MAX_RATE:
        raise BadFile(
            f"Line {line}: a rate must be above zero and below 10^18, not {text.strip()[:40]!r}."
        )
    return rate


def store(rates, base):
    """Write (day, currency, rate) rows, replacing the stored rates of the same days."""
    rows = [
        ExchangeRate(
            day=day,
            base=base,
            currency=currency,
            rate=rate.quantize(values.MIN_RATE, context=EXACT),
        )
        for day, currency, rate in rates
    ]
    ExchangeRate.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["base", "currency", "day"],
        update_fields=["rate"],
    )
    return len(rows)

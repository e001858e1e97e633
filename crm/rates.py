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

The workers also fetch the ECB's daily file themselves (fetch_ecb, once a day,
ECB_RATES_URL); a rate that is new or differs from the stored one is
announced by `rates_changed`, on which the workers revalue (crm/revalue.py).
"""

import bisect
import csv
import datetime
import io
import zipfile
from decimal import Context, Decimal

import requests
from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from crm import values
from crm.models import ExchangeRate

ZERO = Decimal("0")
# Wide enough for a 20-digit amount divided by a 12-place rate, before rounding.
EXACT = Context(prec=60)
MAX_RATE = Decimal(10) ** 18  # ExchangeRate.rate: 30 digits, 12 places

# Sent (after commit) when rates of `currency` from `since` on were added or
# changed: the amounts of that currency from that day on may be worth another
# figure now. The workers revalue them (postbacks/loops/periodic.py).
rates_changed = Signal()


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


def changed_since(rates, base):
    """{currency: earliest day} of the (day, currency, rate) rows that differ from the stored."""
    rates = [(d, c, r.quantize(values.MIN_RATE, context=EXACT)) for d, c, r in rates]
    stored = dict(
        ((c, d), r)
        for c, d, r in ExchangeRate.objects.filter(
            base=base,
            currency__in={c for _, c, _ in rates},
            day__in={d for d, _, _ in rates},
        ).values_list("currency", "day", "rate")
    )
    since = {}
    for day, currency, rate in rates:
        if stored.get((currency, day)) != rate:
            since[currency] = min(day, since.get(currency, day))
    return since


def announce(since):
    """Send rates_changed for each {currency: day} once the transaction commits."""
    for currency, day in since.items():
        transaction.on_commit(
            lambda c=currency, d=day: rates_changed.send(ExchangeRate, currency=c, since=d)
        )


# -- fetching the ECB's daily file --------------------------------------------

ECB_FILE = "eurofxref.zip"
TIMEOUT = (5, 30)  # connect, read: seconds


class FetchError(Exception):
    pass


def fetch_ecb(base=None):
    """Download and read the ECB's latest daily rates: [(day, currency, rate per `base`)]."""
    base = base or values.reporting_currency()
    url = f"{settings.ECB_RATES_URL.rstrip('/')}/{ECB_FILE}"
    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as e:
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from e
    if response.status_code != 200:
        raise FetchError(f"{url} answered HTTP {response.status_code}.")
    try:
        text = unpack(response.content)
        found = [rate for line in read_file(io.StringIO(text), base) for rate in line]
    except (BadFile, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise FetchError(f"{url}: {e}") from e
    if not found:
        raise FetchError(f"{url} has no rate for {base} (the reporting currency).")
    return found


def unpack(content):
    """The CSV text of the ECB's zip (one eurofxref.csv inside), or of a plain CSV answer."""
    if not zipfile.is_zipfile(io.BytesIO(content)):
        return content.decode("utf-8-sig")
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        names = [n for n in z.namelist() if n.lower().endswith(".csv")]
        if not names:
            raise BadFile("the zip file holds no CSV file.")
        return z.read(names[0]).decode("utf-8-sig")


def fetch_and_store():
    """Fetch the ECB's rates, store them and announce the new or changed ones.

    Returns {currency: earliest changed day}."""
    base = values.reporting_currency()
    found = fetch_ecb(base)
    with transaction.atomic():
        since = changed_since(found, base)
        store(found, base)
        announce(since)
    return since

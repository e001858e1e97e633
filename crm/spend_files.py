"""Reading spend files exported from Ads Manager, TikTok Ads and the like.

A file (CSV or XLSX) is a header line and one line per day and campaign (or
ad set, ad, country). A mapping says which column holds each of our fields;
`guess` proposes one from the usual titles of those exports. `read_rows`
turns the lines into spend rows and names every line it cannot read, by the
row number a spreadsheet shows (the header is row 1): a file with one bad
line is imported not at all, so it must say them all.
"""

import csv
import datetime
import io
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from crm import values

FIELDS = ["day", "campaign", "adset", "ad", "geo", "amount", "currency"]
LABELS = {
    "day": "Day",
    "campaign": "Campaign",
    "adset": "Ad set",
    "ad": "Ad",
    "geo": "Geo (country code)",
    "amount": "Amount spent",
    "currency": "Currency",
}
REQUIRED = ("day", "amount")
# Titles of the exports, best first (compared lowercased). Ids come before
# names: a click's attribution (advert__campaign_id …) usually carries the ids,
# so an export with both columns matches the clients by id.
TITLES = {
    "day": ["day", "date", "reporting starts", "stat time day", "stat_time_day", "by day"],
    "campaign": ["campaign id", "campaign name", "campaign"],
    "adset": ["ad set id", "ad group id", "ad set name", "ad group name", "ad set", "ad group"],
    "ad": ["ad id", "ad name", "ad"],
    "geo": ["country code", "country", "country/region", "geo", "region"],
    "amount": ["amount spent", "spend", "total cost", "cost", "amount"],
    "currency": ["currency", "account currency"],
}
# "Amount spent (USD)": the amount's title names its currency.
CURRENCY_IN_TITLE = re.compile(r"\(([A-Za-z]{3})\)\s*$")
MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 500_000
# Bad lines named on the page; the rest are counted.
MAX_ERRORS = 50
# A cell's text kept for a message or a dimension.
MAX_CELL = 1000


class BadFile(ValueError):
    """A file that cannot be read at all; the message says why."""


@dataclass
class Table:
    headers: list
    lines: list  # (row number, [cells])


@dataclass
class Parsed:
    rows: list = field(default_factory=list)  # (row number, spend row dict)
    errors: list = field(default_factory=list)
    bad: int = 0  # lines with an error, named or not
    read: int = 0  # lines read, blank ones left out

    def add_error(self, text):
        self.bad += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)

    def per_day(self):
        """[(day, rows, {currency: amount})] in day order."""
        days = defaultdict(lambda: [0, defaultdict(lambda: Decimal(0))])
        for _, row in self.rows:
            entry = days[row["day"]]
            entry[0] += 1
            entry[1][row["currency"]] += row["amount"]
        return [(day, n, dict(sums)) for day, (n, sums) in sorted(days.items())]


# -- reading the file ----------------------------------------------------------


def is_xlsx(name, data):
    return name.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK"


def read_table(name, data):
    """The header and lines of a CSV or XLSX file's bytes; raises BadFile."""
    if len(data) > MAX_BYTES:
        raise BadFile(f"The file is over {MAX_BYTES // 1024 // 1024} MB; split it by dates.")
    cells = read_xlsx(data) if is_xlsx(name, data) else read_csv(data)
    lines = []
    headers = None
    for number, row in enumerate(cells, start=1):
        row = [cell_text(c) for c in row]
        if not any(row):
            continue
        if headers is None:
            headers = [h.strip() for h in row]
            continue
        if len(lines) >= MAX_ROWS:
            raise BadFile(f"The file has over {MAX_ROWS:,} lines; split it by dates.")
        lines.append((number, row))
    if not headers:
        raise BadFile("The file is empty: no header line.")
    return Table(headers, lines)


def read_csv(data):
    text = decode(data)
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return csv.reader(io.StringIO(text, newline=""), dialect)


def decode(data):
    """Text of a CSV: UTF-16 when it says so (some exports), UTF-8, else Windows-1252."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_xlsx(data):
    import openpyxl  # only when a spreadsheet comes: its import costs a quarter second

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise BadFile(f"The file is not an XLSX spreadsheet that can be read ({e}).") from e
    try:
        return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def cell_text(value):
    """A cell as text: dates as ISO, whole numbers without '.0' (ids), None as ''."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if not value.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return values.clean_text(str(value))[:MAX_CELL].strip()


# -- the mapping ------------------------------------------------------------------


def plain_title(title):
    return " ".join(CURRENCY_IN_TITLE.sub("", title).lower().split())


def guess(headers, remembered=None):
    """{our field: column title} for `headers`: a remembered mapping's titles where
    the file has them, else the usual export titles."""
    found = {}
    remembered = remembered or {}
    for name in FIELDS:
        if remembered.get(name) in headers:
            found[name] = remembered[name]
            continue
        by_plain = {}
        for title in headers:
            by_plain.setdefault(plain_title(title), title)
        for wanted in TITLES[name]:
            if wanted in by_plain:
                found[name] = by_plain[wanted]
                break
    return found


def title_currency(title):
    """The currency an amount's title names ('Amount spent (USD)' -> 'USD'), or ''."""
    match = CURRENCY_IN_TITLE.search(title or "")
    return match[1].upper() if match else ""


def check_mapping(columns, headers, currency):
    """Errors of a mapping against a file's headers: missing required fields,
    titles the file does not have, no currency at all."""
    errors = []
    for name in REQUIRED:
        if not columns.get(name):
            errors.append(f"Choose the column of {LABELS[name].lower()}.")
    for name, title in columns.items():
        if title and title not in headers:
            errors.append(f"The file has no column {values.shown(title)} ({LABELS[name]}).")
    if not columns.get("currency") and not currency:
        errors.append("Choose the currency column or give the currency of the amounts.")
    return errors


# -- the lines --------------------------------------------------------------------


def parse_day(text):
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T].*", text):
        text = text[:10]  # "2026-03-02 00:00:00": TikTok's stat_time_day
    return values.parse_date(text)


def parse_amount(text):
    s = text.strip()
    if "," in s and "." in s and s.rfind(",") < s.rfind("."):
        s = s.replace(",", "")  # 1,234.56: thousands separators
    amount = values.parse_amount(s)
    if amount < 0:
        raise ValueError(f"{values.shown(text)} is negative")
    return amount


def read_rows(table, columns, currency=""):
    """Parsed spend rows of `table` by the mapping `columns`; a missing currency
    column takes `currency` (the amount title's, or the one given)."""
    parsed = Parsed()
    where = {name: table.headers.index(title) for name, title in columns.items() if title}
    for number, cells in table.lines:
        parsed.read += 1

        def cell(name, cells=cells):
            i = where.get(name)
            return cells[i] if i is not None and i < len(cells) else ""

        problems, row = [], {}
        day = cell("day")
        if not day:
            problems.append("the day is missing")
        else:
            try:
                row["day"] = parse_day(day)
            except ValueError:
                problems.append(f"day {values.shown(day)} is not a date (2026-03-02)")
        amount = cell("amount")
        try:
            row["amount"] = parse_amount(amount) if amount else Decimal(0)
        except ValueError as e:
            problems.append(f"amount {e}")
        money = cell("currency") or currency
        try:
            row["currency"] = values.parse_currency(money)
        except ValueError:
            problems.append(f"currency {values.shown(money)} is not a three-letter code")
        for name in ("campaign", "adset", "ad"):
            row[name] = cell(name)
        geo = cell("geo").upper()
        if len(geo) > 10:
            problems.append(f"geo {values.shown(geo)} is longer than 10 characters (a code: DE)")
        row["geo"] = geo
        if problems:
            parsed.add_error(f"row {number}: " + "; ".join(problems))
        else:
            parsed.rows.append((number, row))
    return parsed

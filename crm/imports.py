"""CSV imports of clients and conversions, row by row, with the reasons rows fail."""

import csv
from dataclasses import dataclass, field

from django.core.management.base import CommandError
from django.db import transaction

from crm import values
from crm.clicks import BadInput, split_params
from crm.models import Client
from tracker.models import STATUS_APPROVED, STATUS_PENDING, STATUS_REJECTED, Goal, parse_status_map

# The status words trackers and networks put in exports.
STATUS_WORDS = {
    "": STATUS_APPROVED,
    "approved": STATUS_APPROVED,
    "confirmed": STATUS_APPROVED,
    "sale": STATUS_APPROVED,
    "paid": STATUS_APPROVED,
    "1": STATUS_APPROVED,
    "pending": STATUS_PENDING,
    "hold": STATUS_PENDING,
    "lead": STATUS_PENDING,
    "0": STATUS_PENDING,
    "rejected": STATUS_REJECTED,
    "declined": STATUS_REJECTED,
    "trash": STATUS_REJECTED,
    "-1": STATUS_REJECTED,
}


@dataclass
class Summary:
    created: int = 0
    updated: int = 0
    duplicate: int = 0
    rejected: list = field(default_factory=list)  # (line number, reason)

    def reject(self, line, reason):
        self.rejected.append((line, reason))


def read_rows(stream):
    """(line number, row dict) of a CSV with a header; names lower-cased and stripped."""
    reader = csv.DictReader(stream)
    if not reader.fieldnames:
        raise ValueError("The file is empty or has no header line.")
    reader.fieldnames = [(n or "").strip().lower() for n in reader.fieldnames]
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if k}
        yield reader.line_num, clean


def find_client(subid, spot=None):
    """Our click id, else the team tracker's cl_id (within the spot when given)."""
    client = Client.objects.filter(click_id=subid).select_related("spot").first()
    if client is not None:
        return client
    by_cl = Client.objects.filter(cl_id=subid).select_related("spot")
    if spot is not None:
        by_cl = by_cl.filter(spot=spot)
    found = list(by_cl.order_by("pk")[:2])
    if len(found) > 1:
        raise LookupError(f"cl_id {subid!r} names several clients; pass --spot")
    return found[0] if found else None


def import_conversion(line, row, summary, event, spot=None, status_map=None, on_recorded=None):
    """One row through the endpoint's rules; `on_recorded(conversion, outcome)`
    runs in the conversion's transaction (its deliveries and system message)."""
    subid = row.get("subid") or row.get("click_id") or row.get("clickid") or ""
    if not subid:
        return summary.reject(line, "no subid")
    try:
        client = find_client(subid, spot)
    except LookupError as e:
        return summary.reject(line, str(e))
    if client is None:
        return summary.reject(line, f"no client with click id or cl_id {subid!r}")
    try:
        amount = values.parse_amount(row["payout"]) if row.get("payout") else None
        currency = values.parse_currency(row["currency"]) if row.get("currency") else ""
    except ValueError as e:
        return summary.reject(line, str(e))
    word = (row.get("status") or "").lower()
    status = (status_map or {}).get(word) or STATUS_WORDS.get(word)
    if status is None:
        return summary.reject(line, f"unknown status {row.get('status')!r}")
    tid = row.get("tid", "")[:200]
    try:
        with transaction.atomic():  # the conversion and what it makes, together
            conversion, outcome = client.record_conversion(
                row.get("event") or row.get("goal") or event, amount, currency, tid, status
            )
            if on_recorded is not None:
                on_recorded(conversion, outcome)
    except Goal.DoesNotExist as e:
        return summary.reject(line, str(e))
    setattr(summary, outcome, getattr(summary, outcome) + 1)


def import_client(line, row, summary, spot):
    user_id = row.pop("user_id", "")
    fields = {k: row.pop(k) for k in ("username", "name") if k in row}
    try:
        extra, params = split_params(list(row.items()))
        fields.update(extra)
        if user_id:
            if not user_id.lstrip("-").isdigit():
                raise BadInput(f"user_id {user_id!r} is not a number")
            fields["user_id"] = int(user_id)
    except BadInput as e:
        return summary.reject(line, str(e))
    for name in ("username", "name"):
        limit = Client._meta.get_field(name).max_length
        if len(fields.get(name, "")) > limit:
            return summary.reject(line, f"{name} longer than {limit} characters")
    params = {k: v for k, v in params.items() if v != ""}
    with transaction.atomic():
        if "user_id" in fields:
            existing = Client.objects.filter(spot=spot, user_id=fields["user_id"]).first()
            if existing is not None:
                summary.duplicate += 1
                return
        Client.objects.create(spot=spot, params=params, **fields)
    summary.created += 1


def partner_status_map(partner):
    return parse_status_map(partner.status_map) if partner else {}


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return max(sum(1 for _ in f) - 1, 0)
    except OSError as e:
        raise CommandError(f"Could not read {path}: {e}") from e


def print_summary(command, summary, created_label, duplicate_label):
    out = command.stdout
    out.write(command.style.SUCCESS(f"{summary.created} {created_label}."))
    if summary.updated:
        out.write(f"{summary.updated} updated (same tid, new status or amount).")
    if summary.duplicate:
        out.write(f"{summary.duplicate} {duplicate_label}.")
    if summary.rejected:
        out.write(command.style.WARNING(f"{len(summary.rejected)} row(s) rejected:"))
        for line, reason in summary.rejected:
            out.write(f"  line {line}: {reason}")

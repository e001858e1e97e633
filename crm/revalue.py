"""Revaluing after a rate arrived or changed: conversions and spend of its currency.

A rate of a currency on a day applies to that day and to the days after it
until the next rate (crm/rates.py), so a new or changed rate may change the
reporting-currency figure of every amount of its currency from its day on.
The workers call this in the background (postbacks/loops/periodic.py); the
statistics move with each figure, as `manage.py revalue_conversions` does it.
"""

import datetime

from django.db.models import Min
from django.utils import timezone

from crm import rates, spend, values
from crm.management.commands.revalue_conversions import CHUNK
from crm.management.commands.revalue_conversions import revalue as revalue_chunk
from crm.models import UNRATED, Conversion, Spend


def revalue(currency=None, since=None):
    """Revalue the conversions and spend of `currency` (None: all) from `since` (None: ever).

    Returns how many conversions changed."""
    if currency == values.reporting_currency():
        return 0  # its amounts need no rate: nothing can change
    todo = Conversion.objects.all()
    if currency:
        todo = todo.filter(currency=currency)
    if since:
        todo = todo.filter(created__gte=start_of(since))
    changed = revalue_conversions(todo)
    spend.revalue_spend(currency=currency, since=since)
    return changed


def revalue_unrated():
    """Give the conversions and spend still without a reporting figure one, where a rate is known.

    Catches what a revaluation lost (a process stopped before it ran)."""
    changed = revalue_conversions(Conversion.objects.filter(UNRATED))
    unrated = Spend.objects.filter(reported_amount__isnull=True).exclude(amount=0)
    for currency, day in unrated.values_list("currency").annotate(Min("day")):
        spend.revalue_spend(currency=currency, since=day)
    return changed


def revalue_conversions(todo):
    ids = list(todo.order_by("pk").values_list("pk", flat=True))
    table = rates.RateTable(set(todo.values_list("currency", flat=True).distinct()))
    return sum(revalue_chunk(ids[i : i + CHUNK], table) for i in range(0, len(ids), CHUNK))


def start_of(day):
    """The first moment of `day` in the installation's time zone (a conversion's day is local)."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))

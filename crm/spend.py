"""Writing spend (crm.Spend) and keeping the rollup's cost in step with it.

Every spend row adds its amount in the reporting currency (or 1 to
`cost_unrated` while its currency has no rate) to the leads row (goal_pk 0)
of its key, at every grain of crm.stats.GRAINS and on both bases: a day's
cost belongs to that day whether the report counts by conversion or by click
date. Manager and partner are 0 for spend: traffic is bought per campaign,
not per manager.

Three writers, each a difference applied in the transaction of the change:
`replace_day` (a file or an ad network's figures of one day), `add_click_cost`
(one click's cost parameter) and `revalue_spend` (a rate came or changed).
`rebuild_cost` recomputes a spot's cost from the rows, for rebuild_stats.
"""

import logging
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum

from crm import rates, stats, values
from crm.models import DailyStat, Spend

log = logging.getLogger(__name__)

ZERO = Decimal("0")
CLICK_SOURCE = "click"
# The dimensions a spend row has, in crm.stats.DIMS' order; manager and partner are 0.
DIMS = ("campaign", "adset", "ad", "geo")
COST_SUMS = ("cost", "cost_unrated")
# Chunk of rows read, revalued and written at once by revalue_spend.
CHUNK = 2000


def field_length(name):
    return Spend._meta.get_field(name).max_length


def clean_key(campaign="", adset="", ad="", geo=""):
    """A row's dimensions as the rollup keeps them: text, cut to the columns' length."""
    return (
        values.clean_text(str(campaign or "")).strip()[: field_length("campaign")],
        values.clean_text(str(adset or "")).strip()[: field_length("adset")],
        values.clean_text(str(ad or "")).strip()[: field_length("ad")],
        values.clean_text(str(geo or "")).strip().upper()[: field_length("geo")],
    )


# -- the rollup ------------------------------------------------------------------


def cost_rows(spot_id, day, dims, reported):
    """(rollup key, cost, cost_unrated) of one spend row at every grain and basis."""
    cost, unrated = (ZERO, 1) if reported is None else (Decimal(reported), 0)
    full = (*dims, 0, 0)
    return [
        (key, cost, unrated)
        for basis in (DailyStat.CONVERSION, DailyStat.CLICK)
        for key in stats.grain_keys(basis, day, spot_id, 0, full)
    ]


def row_contribution(row):
    """cost_rows of a stored Spend row (an instance or a values() dict)."""
    get = row.get if isinstance(row, dict) else row.__dict__.get
    dims = tuple(get(name) for name in DIMS)
    return cost_rows(get("spot_id"), get("day"), dims, get("reported_amount"))


def apply_cost(minus, plus):
    """Subtract the cost rows of `minus`, add those of `plus`; unchanged keys are skipped."""
    deltas = defaultdict(lambda: [ZERO, 0])
    for sign, rows in ((-1, minus), (1, plus)):
        for key, cost, unrated in rows:
            delta = deltas[key]
            delta[0] += sign * cost
            delta[1] += sign * unrated
    changed = [(key, *delta) for key, delta in deltas.items() if any(delta)]
    if changed:
        add_cost(changed)


def add_cost(rows):
    """Add each (key, cost, cost_unrated) to its rollup row, creating the missing ones
    (their counts and revenue 0), in key order as crm.stats.add writes."""
    stats.add(rows, added=COST_SUMS, zeroed=stats.SUMS)


# -- writers ---------------------------------------------------------------------


def spot_pk(spot):
    return getattr(spot, "pk", spot)


def summed(rows):
    """{(campaign, adset, ad, geo, currency): amount} of dict rows, same keys added up."""
    totals = defaultdict(lambda: ZERO)
    for row in rows:
        key = clean_key(row.get("campaign"), row.get("adset"), row.get("ad"), row.get("geo"))
        currency = values.parse_currency(row.get("currency") or "")
        totals[(*key, currency)] += Decimal(row["amount"])
    for key, amount in totals.items():
        if abs(amount) > values.MAX_AMOUNT:
            raise ValueError(f"The spend of {key[0] or 'no campaign'} is too large an amount.")
    return totals


def replace_day(source, spot, day, rows):
    """Put `rows` in place of `source`'s spend of `spot` on `day`; returns the rows written.

    rows: dicts of campaign, adset, ad, geo, amount (Decimal) and currency.
    Rows of the same key are added up. Raises ValueError on a bad currency
    or an amount too large; then nothing changed.
    """
    spot_id = spot_pk(spot)
    totals = summed(rows)
    with transaction.atomic():
        old = Spend.objects.select_for_update().filter(source=source, spot_id=spot_id, day=day)
        minus = [
            c
            for row in old.values("spot_id", "day", *DIMS, "reported_amount")
            for c in row_contribution(row)
        ]
        old.delete()
        new = [
            Spend(
                source=source,
                spot_id=spot_id,
                day=day,
                campaign=campaign,
                adset=adset,
                ad=ad,
                geo=geo,
                amount=amount,
                currency=currency,
                reported_amount=rates.to_reporting(amount, currency, day),
            )
            for (campaign, adset, ad, geo, currency), amount in sorted(totals.items())
        ]
        Spend.objects.bulk_create(new, batch_size=1000)
        apply_cost(minus, [c for row in new for c in row_contribution(row)])
    return len(new)


def add_click_cost(spot, day, campaign, adset, ad, geo, amount, currency):
    """Add one click's cost to the "click" spend row of its key, and to the rollup.

    The row's reported amount is its whole amount at today's rate of its day,
    so a rate that came since the last click is taken in; the rollup moves by
    the difference. Runs in the caller's transaction when there is one.
    """
    spot_id = spot_pk(spot)
    campaign, adset, ad, geo = clean_key(campaign, adset, ad, geo)
    currency = values.parse_currency(currency)
    key = dict(
        source=CLICK_SOURCE,
        spot_id=spot_id,
        day=day,
        campaign=campaign,
        adset=adset,
        ad=ad,
        geo=geo,
        currency=currency,
    )
    with transaction.atomic():
        # Made empty unless it exists, then locked: two clicks of one key add up.
        Spend.objects.bulk_create(
            [Spend(**key, amount=ZERO, reported_amount=ZERO)], ignore_conflicts=True
        )
        row = Spend.objects.select_for_update().get(**key)
        minus = row_contribution(row)
        total = row.amount + Decimal(amount)
        if abs(total) > values.MAX_AMOUNT:
            raise ValueError(f"the click spend of {campaign or 'no campaign'} is too large")
        row.amount = total
        row.reported_amount = rates.to_reporting(total, currency, day)
        row.save(update_fields=["amount", "reported_amount", "updated"])
        apply_cost(minus, row_contribution(row))
    return row


def revalue_spend(currency=None, since=None):
    """Value spend rows anew at the rates stored now (of `currency`, from the day
    `since`, or all) and move the rollup; returns the number of rows changed.

    Rows in the reporting currency need no rate; they are read too when no
    currency is named, for the day the reporting currency itself changes."""
    rows = Spend.objects.all()
    if currency:
        rows = rows.filter(currency=currency)
    if since:
        rows = rows.filter(day__gte=since)
    table = rates.RateTable(set(rows.values_list("currency", flat=True).distinct()))
    changed, last = 0, 0
    while True:
        with transaction.atomic():
            chunk = list(rows.filter(pk__gt=last).order_by("pk").select_for_update()[:CHUNK])
            if not chunk:
                return changed
            last = chunk[-1].pk
            minus, plus, moved = [], [], []
            for row in chunk:
                new = rates.to_reporting(row.amount, row.currency, row.day, table.rate_on)
                if new != row.reported_amount:
                    minus += row_contribution(row)
                    row.reported_amount = new
                    plus += row_contribution(row)
                    moved.append(row)
            Spend.objects.bulk_update(moved, ["reported_amount"])
            apply_cost(minus, plus)
            changed += len(moved)


def rebuild_cost(spot_id):
    """Add a spot's cost to a rollup whose cost was just cleared (rebuild_stats);
    returns the spend rows read."""
    grouped = (
        Spend.objects.filter(spot_id=spot_id)
        .values("day", *DIMS)
        .annotate(
            cost=Sum("reported_amount", filter=Q(reported_amount__isnull=False)),
            unrated=Count("pk", filter=Q(reported_amount__isnull=True)),
            n=Count("pk"),
        )
        .order_by()
    )
    plus, read = [], 0
    for group in grouped:
        read += group["n"]
        dims = tuple(group[name] for name in DIMS)
        # cost_rows of the group's rated sum, with its count of unrated rows.
        for key, cost, _ in cost_rows(spot_id, group["day"], dims, group["cost"] or ZERO):
            plus.append((key, cost, group["unrated"]))
    if plus:
        apply_cost([], plus)
    return read


# -- a click's cost parameter ----------------------------------------------------


def click_cost(spot, params):
    """(amount, currency) of the cost a click's parameters carry, or None.

    Bad values are logged and left out: the click itself is never refused for
    its cost."""
    name = spot.cost_param
    text = params.get(name) if name else None
    if text in (None, ""):
        return None
    try:
        amount = values.parse_amount(text)
    except ValueError as e:
        log.warning("Click of spot %s: cost left out, %s", spot.pk, e)
        return None
    if amount < 0:
        log.warning("Click of spot %s: cost left out, %s is negative", spot.pk, values.shown(text))
        return None
    currency_text = params.get(spot.cost_currency_param) if spot.cost_currency_param else None
    try:
        currency = values.parse_currency(currency_text or spot.currency)
    except ValueError as e:
        log.warning("Click of spot %s: cost left out, %s", spot.pk, e)
        return None
    return (amount, currency) if amount else None


def add_client_cost(client, cost):
    """A new client's click cost (click_cost's answer) on its click day and attribution."""
    amount, currency = cost
    try:
        with transaction.atomic():
            add_click_cost(
                client.spot_id,
                stats.day_of(client.created),
                client.advert_campaign_id,
                client.advert_adset_id,
                client.advert_ad_id,
                client.geo,
                amount,
                currency,
            )
    except ValueError as e:
        log.warning("Click of client %s: cost left out, %s", client.pk, e)


def delete_rows(rows):
    """Delete spend rows (a queryset) and take their cost out of the rollup."""
    with transaction.atomic():
        locked = Spend.objects.select_for_update().filter(pk__in=rows.values("pk"))
        minus = [
            c
            for row in locked.values("spot_id", "day", *DIMS, "reported_amount")
            for c in row_contribution(row)
        ]
        deleted, _ = Spend.objects.filter(pk__in=rows.values("pk")).delete()
        apply_cost(minus, [])
    return deleted

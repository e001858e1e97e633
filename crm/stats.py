"""Keeps the statistics rollup (crm.DailyStat) in step with clients and conversions.

Every lead adds 1 to its click day; every counted (not rejected) conversion adds
1 and its amount to its conversion day and to its client's click day. A change
is applied as a difference: the old contribution out, the new one in, inside
the same transaction as the change, so the rollup never drifts from the rows
it summarises. Bulk writes (QuerySet.update, bulk_create) bypass the signals;
`manage.py rebuild_stats` recomputes everything from the rows.
"""

from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_init, post_save, pre_save
from django.utils import timezone

from crm.models import Client, Conversion, DailyStat
from tracker.models import STATUS_REJECTED

CLICK, CONVERSION = DailyStat.CLICK, DailyStat.CONVERSION
ZERO = Decimal("0")


def day_of(moment):
    return timezone.localdate(moment) if timezone.is_aware(moment) else moment.date()


def client_state(client):
    d = client.__dict__
    return (
        d.get("spot_id"),
        d.get("created"),
        (d.get("advert_campaign_id") or "")[:200],
        (d.get("geo") or "")[:10],
        d.get("manager_id") or 0,
    )


def conversion_state(conversion):
    d = conversion.__dict__
    return (
        d.get("spot_id"),
        d.get("goal_id"),
        d.get("status"),
        d.get("amount"),
        d.get("created"),
    )


def lead_rows(cstate):
    spot_id, created, campaign, geo, manager = cstate
    if created is None:
        return []
    return [((CLICK, day_of(created), spot_id, 0, campaign, geo, manager), 1, ZERO)]


def conversion_rows(vstate, cstate):
    spot_id, goal_id, status, amount, created = vstate
    if created is None or status == STATUS_REJECTED:
        return []
    _, client_created, campaign, geo, manager = cstate
    amount = Decimal(amount or 0)
    rows = [((CONVERSION, day_of(created), spot_id, goal_id, campaign, geo, manager), 1, amount)]
    if client_created is not None:
        key = (CLICK, day_of(client_created), spot_id, goal_id, campaign, geo, manager)
        rows.append((key, 1, amount))
    return rows


def apply(minus, plus):
    """Subtract the rows of `minus`, add those of `plus`; untouched keys are skipped."""
    deltas = defaultdict(lambda: [0, ZERO])
    for sign, rows in ((-1, minus), (1, plus)):
        for key, count, amount in rows:
            deltas[key][0] += sign * count
            deltas[key][1] += sign * amount
    changed = [(key, count, amount) for key, (count, amount) in deltas.items() if count or amount]
    if changed:
        add(changed)


KEY = ["basis", "day", "spot_id", "goal_pk", "campaign", "geo", "manager_pk"]


def add(rows):
    """Add each (key, count, amount) to its rollup row, creating the missing ones.

    One INSERT … ON CONFLICT DO UPDATE (PostgreSQL, and SQLite since 3.24) for
    all the rows: atomic on its own, so no savepoint and no race between an
    update and an insert. Sorted by key, so two transactions touching the same
    rows lock them in the same order and cannot deadlock.
    """
    table = connection.ops.quote_name(DailyStat._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in [*KEY, "count", "amount"])
    placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(KEY) + 2)) + ")"] * len(rows))
    count, amount = (connection.ops.quote_name(c) for c in ("count", "amount"))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES {placeholders} "
        f"ON CONFLICT ({', '.join(connection.ops.quote_name(c) for c in KEY)}) DO UPDATE SET "
        f"{count} = {table}.{count} + excluded.{count}, "
        f"{amount} = {table}.{amount} + excluded.{amount}"
    )
    params = [value for key, n, total in sorted(rows) for value in (*key, n, total)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def remember_client(sender, instance, **kwargs):
    instance._stat_state = client_state(instance)


def remember_conversion(sender, instance, **kwargs):
    instance._stat_state = conversion_state(instance)


CLIENT_FIELDS = ["spot_id", "created", "advert_campaign_id", "geo", "manager_id"]
CONVERSION_FIELDS = ["spot_id", "goal_id", "status", "amount", "created"]


def stored_state(model, pk, names, state_of):
    """The state of the row as stored, for an instance loaded with deferred fields."""
    row = model.objects.filter(pk=pk).values(*names).first()
    return None if row is None else state_of(model(**row))


def full_client_state(client):
    state = client_state(client)
    if state[1] is None and client.pk:
        state = stored_state(Client, client.pk, CLIENT_FIELDS, client_state) or state
    return state


def full_conversion_state(conversion):
    state = conversion_state(conversion)
    if state[4] is None and conversion.pk:
        state = (
            stored_state(Conversion, conversion.pk, CONVERSION_FIELDS, conversion_state) or state
        )
    return state


def complete_client_state(sender, instance, raw=False, **kwargs):
    state = getattr(instance, "_stat_state", None)
    if not raw and instance.pk and not instance._state.adding and (not state or not state[1]):
        instance._stat_state = stored_state(Client, instance.pk, CLIENT_FIELDS, client_state)


def complete_conversion_state(sender, instance, raw=False, **kwargs):
    state = getattr(instance, "_stat_state", None)
    if not raw and instance.pk and not instance._state.adding and (not state or not state[4]):
        instance._stat_state = stored_state(
            Conversion, instance.pk, CONVERSION_FIELDS, conversion_state
        )


def client_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    old, new = getattr(instance, "_stat_state", None), full_client_state(instance)
    if created:
        apply([], lead_rows(new))
    elif old is None:
        return  # a row that vanished meanwhile: nothing to move
    elif old != new:
        # Attribution or manager changed: move the lead and its conversions.
        minus, plus = lead_rows(old), lead_rows(new)
        for conversion in Conversion.objects.filter(client_id=instance.pk):
            state = conversion_state(conversion)
            minus += conversion_rows(state, old)
            plus += conversion_rows(state, new)
        apply(minus, plus)
    instance._stat_state = new


def client_deleted(sender, instance, **kwargs):
    apply(lead_rows(getattr(instance, "_stat_state", client_state(instance))), [])


def conversion_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    old, new = getattr(instance, "_stat_state", None), full_conversion_state(instance)
    cstate = full_client_state(instance.client)
    minus = [] if created or old is None else conversion_rows(old, cstate)
    apply(minus, conversion_rows(new, cstate))
    instance._stat_state = new


def conversion_deleted(sender, instance, **kwargs):
    old = getattr(instance, "_stat_state", conversion_state(instance))
    apply(conversion_rows(old, client_state(instance.client)), [])


def connect():
    post_init.connect(remember_client, sender=Client, dispatch_uid="stats_client_init")
    post_init.connect(remember_conversion, sender=Conversion, dispatch_uid="stats_conv_init")
    # Instances loaded with deferred fields: read what is stored before it changes.
    pre_save.connect(complete_client_state, sender=Client, dispatch_uid="stats_client_pre")
    pre_save.connect(complete_conversion_state, sender=Conversion, dispatch_uid="stats_conv_pre")
    post_save.connect(client_saved, sender=Client, dispatch_uid="stats_client_saved")
    post_save.connect(conversion_saved, sender=Conversion, dispatch_uid="stats_conv_saved")
    post_delete.connect(client_deleted, sender=Client, dispatch_uid="stats_client_deleted")
    post_delete.connect(conversion_deleted, sender=Conversion, dispatch_uid="stats_conv_deleted")


def rebuild_spot(spot_id):
    """Recompute one spot's rollup rows from its clients and conversions."""
    from django.db.models import Count, Sum, Value
    from django.db.models.functions import Coalesce, Substr, TruncDate

    tz = timezone.get_current_timezone()
    rows = []
    leads = (
        Client.objects.filter(spot_id=spot_id)
        .annotate(
            d=TruncDate("created", tzinfo=tz),
            c=Substr("advert_campaign_id", 1, 200),
            m=Coalesce("manager_id", Value(0)),
        )
        .values("d", "c", "geo", "m")
        .annotate(n=Count("id"))
        .order_by()
    )
    for r in leads:
        rows.append(
            DailyStat(basis=CLICK, goal_pk=0, count=r["n"], amount=ZERO, **_key(r, spot_id))
        )
    counted = Conversion.objects.filter(spot_id=spot_id).exclude(status=STATUS_REJECTED)
    for basis, moment in ((CONVERSION, "created"), (CLICK, "client__created")):
        grouped = (
            counted.annotate(
                d=TruncDate(moment, tzinfo=tz),
                c=Substr("client__advert_campaign_id", 1, 200),
                geo=F("client__geo"),
                m=Coalesce("client__manager_id", Value(0)),
            )
            .values("d", "goal_id", "c", "geo", "m")
            .annotate(n=Count("id"), s=Sum("amount"))
            .order_by()
        )
        for r in grouped:
            rows.append(
                DailyStat(
                    basis=basis,
                    goal_pk=r["goal_id"],
                    count=r["n"],
                    amount=r["s"],
                    **_key(r, spot_id),
                )
            )
    with transaction.atomic():
        DailyStat.objects.filter(spot_id=spot_id).delete()
        DailyStat.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _key(r, spot_id):
    return {
        "spot_id": spot_id,
        "day": r["d"],
        "campaign": r["c"] or "",
        "geo": r["geo"] or "",
        "manager_pk": r["m"],
    }

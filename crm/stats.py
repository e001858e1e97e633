"""Keeps the statistics rollup (crm.DailyStat) in step with clients and conversions.

Every lead adds 1 to its click day; every counted (not rejected) conversion adds
1 and its amount in the reporting currency (or 1 to `unrated` while its
currency has no rate) to its conversion day and to its client's click day,
at every grain (GRAINS below). A change
is applied as a difference: the old contribution out, the new one in, inside
the same transaction as the change, so the rollup never drifts from the rows
it summarises. Bulk writes (QuerySet.update, bulk_create) bypass the signals;
`manage.py rebuild_stats` recomputes everything from the rows.
"""

import contextlib
import functools
import threading
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, F, Sum, Value
from django.db.models.functions import Coalesce, Substr, TruncDate
from django.db.models.signals import post_delete, post_init, post_save, pre_save
from django.utils import timezone

from crm import together
from crm.models import UNRATED, Client, Conversion, DailyStat
from tracker.models import STATUS_REJECTED

CLICK, CONVERSION = DailyStat.CLICK, DailyStat.CONVERSION
ZERO = Decimal("0")

# The dimensions a client is counted under, in DailyStat's column order.
DIMS = ("campaign", "adset", "ad", "geo", "manager", "partner")
BLANK = ("", "", "", "", 0, 0)
# Grain name -> the dimensions its rows keep (the others are blank). "*" keeps
# them all and answers any report; the coarse ones make the common reports
# (by day, geo, campaign, campaign then geo) read few rows. A new grain costs
# one more rollup row per event and per basis.
GRAINS = {"": (), "g": ("geo",), "c": ("campaign",), "cg": ("campaign", "geo"), "*": DIMS}
FINEST = "*"


def day_of(moment):
    return timezone.localdate(moment) if timezone.is_aware(moment) else moment.date()


def client_state(client):
    d = client.__dict__
    return (
        d.get("spot_id"),
        d.get("created"),
        (d.get("advert_campaign_id") or "")[:200],
        (d.get("advert_adset_id") or "")[:200],
        (d.get("advert_ad_id") or "")[:200],
        (d.get("geo") or "")[:10],
        d.get("manager_id") or 0,
        d.get("partner_id") or 0,
    )


def conversion_state(conversion):
    d = conversion.__dict__
    unrated = d.get("reported_amount") is None and bool(d.get("amount"))  # models.UNRATED
    return (
        d.get("spot_id"),
        d.get("goal_id"),
        d.get("status"),
        d.get("reported_amount"),
        d.get("created"),
        unrated,
    )


def grain_keys(basis, day, spot_id, goal_pk, dims):
    """The rollup key of one event at every grain."""
    for grain, kept in GRAINS.items():
        values = (
            v if name in kept else blank for name, v, blank in zip(DIMS, dims, BLANK, strict=True)
        )
        yield (grain, basis, day, spot_id, goal_pk, *values)


def lead_rows(cstate):
    spot_id, created, *dims = cstate
    if created is None:
        return []
    return [(key, 1, ZERO, 0) for key in grain_keys(CLICK, day_of(created), spot_id, 0, dims)]


def conversion_rows(vstate, cstate):
    spot_id, goal_id, status, amount, created, unrated = vstate
    if created is None or status == STATUS_REJECTED:
        return []
    _, client_created, *dims = cstate
    amount, unrated = Decimal(amount or 0), int(unrated)
    keys = list(grain_keys(CONVERSION, day_of(created), spot_id, goal_id, dims))
    if client_created is not None:
        keys += grain_keys(CLICK, day_of(client_created), spot_id, goal_id, dims)
    return [(key, 1, amount, unrated) for key in keys]


_gathering = threading.local()


@contextlib.contextmanager
def gathered():
    """Inside it, the changes to the rollup are kept and added once at its end:
    one statement for a whole batch (postbacks/incoming/batches.py and settling.py).
    It must end inside the transaction of the changes it gathers."""
    if getattr(_gathering, "rows", None) is not None:
        yield  # an outer one adds them
        return
    _gathering.rows = ([], [])
    try:
        yield
        minus, plus = _gathering.rows
    finally:
        _gathering.rows = None
    apply(minus, plus)


def gathered_so_far():
    """A mark of what is gathered; forget_since(mark) drops what came after it
    (a batch's row whose savepoint was rolled back)."""
    rows = getattr(_gathering, "rows", None)
    return None if rows is None else (len(rows[0]), len(rows[1]))


def forget_since(mark):
    rows = getattr(_gathering, "rows", None)
    if rows is not None and mark is not None:
        del rows[0][mark[0] :], rows[1][mark[1] :]


def apply(minus, plus):
    """Subtract the rows of `minus`, add those of `plus`; untouched keys are skipped."""
    gathering = getattr(_gathering, "rows", None)
    if gathering is not None:
        gathering[0].extend(minus)
        gathering[1].extend(plus)
        return
    deltas = defaultdict(lambda: [0, ZERO, 0])
    for sign, rows in ((-1, minus), (1, plus)):
        for key, count, amount, unrated in rows:
            delta = deltas[key]
            delta[0] += sign * count
            delta[1] += sign * amount
            delta[2] += sign * unrated
    changed = [(key, *delta) for key, delta in deltas.items() if any(delta)]
    if changed:
        add(changed)


# The rollup's key columns, in the order of its unique constraint (where they are listed).
KEY = [
    DailyStat._meta.get_field(name).attname
    for name in next(c for c in DailyStat._meta.constraints if c.name == "daily_stat_key").fields
]
SUMS = ("count", "amount", "unrated")
# Dimension -> its rollup column (the key's last ones, in DIMS' order).
DIM_COLUMNS = dict(zip(DIMS, KEY[5:], strict=True))


@functools.cache
def upsert_sql(vendor, count, added=SUMS, zeroed=()):
    """add's statement, built once: from one array per column on PostgreSQL
    (count None), from `count` rows of VALUES elsewhere. It adds the `added`
    columns; `zeroed` ones, which have no default in the database, are
    written 0 in a row it creates (crm.spend adds cost, not counts).

    Why arrays: the statement and its 14 parameters are then the same for any
    number of rows, so psycopg parses it once per process. As VALUES, 5 to 10
    rows made 70 to 140 parameters, over psycopg's cache limit (50), and
    parsing such a statement anew cost more CPU than the rest of a click."""
    q = connection.ops.quote_name
    table = q(DailyStat._meta.db_table)
    names = [*KEY, *zeroed, *added]
    if count is None:
        types = {f.attname: f.db_type(connection) for f in DailyStat._meta.concrete_fields}
        source = f"SELECT * FROM unnest({', '.join(f'%s::{types[c]}[]' for c in names)})"
    else:
        row = "(" + ", ".join(["%s"] * len(names)) + ")"
        source = f"VALUES {', '.join([row] * count)}"
    updates = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in added)
    return (
        f"INSERT INTO {table} ({', '.join(q(c) for c in names)}) {source} "
        f"ON CONFLICT ({', '.join(q(c) for c in KEY)}) DO UPDATE SET {updates}"
    )


def add(rows, added=SUMS, zeroed=()):
    """Add each (key, count, amount, unrated) to its rollup row, creating the missing ones
    (or each (key, *sums) of other `added` columns, with `zeroed` ones 0 in a new row).

    One INSERT … ON CONFLICT DO UPDATE (PostgreSQL, and SQLite since 3.24) for
    all the rows: atomic on its own, so no savepoint and no race between an
    update and an insert. Sorted by key, so two transactions touching the same
    rows lock them in the same order and cannot deadlock.
    """
    zeros = [0] * len(zeroed)
    rows = [(*key, *zeros, *sums) for key, *sums in sorted(rows)]
    if connection.vendor == "postgresql":
        sql = upsert_sql(connection.vendor, None, added, zeroed)
        params = [list(column) for column in zip(*rows, strict=True)]
    else:
        sql = upsert_sql(connection.vendor, len(rows), added, zeroed)
        params = [v for r in rows for v in r]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def remember_client(sender, instance, **kwargs):
    instance._stat_state = client_state(instance)


def remember_conversion(sender, instance, **kwargs):
    instance._stat_state = conversion_state(instance)


CLIENT_FIELDS = [
    "spot_id",
    "created",
    "advert_campaign_id",
    "advert_adset_id",
    "advert_ad_id",
    "geo",
    "manager_id",
    "partner_id",
]
CONVERSION_FIELDS = ["spot_id", "goal_id", "status", "reported_amount", "created", "amount"]


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
    if not instance.settled:
        # A click's client is counted when the workers settle it (postbacks/incoming/settling.py).
        instance._stat_state = new
        return
    if created:
        apply([], lead_rows(new))
    elif old is None:
        return  # a row that vanished meanwhile: nothing to move
    elif old != new:
        # Attribution or manager changed: move the lead and its conversions.
        minus, plus = lead_rows(old), lead_rows(new)
        stored = Conversion.objects.filter(client_id=instance.pk)
        # With a batch's new conversions, not inserted yet (crm/together.py).
        for conversion in [*stored, *together.pending(instance.pk)]:
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


# Statements of a spot's rebuild after its delete: three groupings of the
# rows, then one per coarse grain (what a progress bar counts).
REBUILD_STEPS = 3 + len(GRAINS) - 1


def rebuild_spot(spot_id, advance=lambda: None):
    """Recompute one spot's rollup rows from its clients and conversions, in SQL.

    The finest grain is grouped from the rows; the coarse grains from it.
    `advance` is called after each step. Returns the number of rows written.
    """
    with transaction.atomic():
        DailyStat.objects.filter(spot_id=spot_id).delete()
        for basis, query in finest_queries(spot_id):
            insert_grouped(FINEST, basis, spot_id, query)
            advance()
        for grain, kept in GRAINS.items():
            if grain != FINEST:
                insert_coarse(grain, kept, spot_id)
                advance()
        return DailyStat.objects.filter(spot_id=spot_id).count()


def finest_queries(spot_id):
    """(basis, grouped queryset) of leads by click day and conversions by both days."""
    tz = timezone.get_current_timezone()

    def dims(prefix):
        return {
            "c": Substr(f"{prefix}advert_campaign_id", 1, 200),
            "a_s": Substr(f"{prefix}advert_adset_id", 1, 200),
            "a_d": Substr(f"{prefix}advert_ad_id", 1, 200),
            "g": Substr(f"{prefix}geo", 1, 10),
            "m": Coalesce(f"{prefix}manager_id", Value(0)),
            "p": Coalesce(f"{prefix}partner_id", Value(0)),
        }

    names = ["d", "c", "a_s", "a_d", "g", "m", "p"]
    leads = (
        Client.objects.filter(spot_id=spot_id)
        .annotate(d=TruncDate("created", tzinfo=tz), gp=Value(0), **dims(""))
        .values("gp", *names)
        .annotate(n=Count("id"), s=Value(ZERO), u=Value(0))
        .order_by()
    )
    yield CLICK, leads
    counted = Conversion.objects.filter(spot_id=spot_id).exclude(status=STATUS_REJECTED)
    for basis, moment in ((CONVERSION, "created"), (CLICK, "client__created")):
        yield (
            basis,
            (
                counted.annotate(
                    d=TruncDate(moment, tzinfo=tz), gp=F("goal_id"), **dims("client__")
                )
                .values("gp", *names)
                .annotate(
                    n=Count("id"),
                    s=Coalesce(Sum("reported_amount"), Value(ZERO)),
                    u=Count("id", filter=UNRATED),
                )
                .order_by()
            ),
        )


def insert_grouped(grain, basis, spot_id, query):
    q = connection.ops.quote_name
    sql, params = query.query.sql_with_params()
    columns = ", ".join(q(c) for c in [*KEY, *SUMS])
    picked = (
        "d, %s, gp, COALESCE(c, ''), COALESCE(a_s, ''), COALESCE(a_d, ''), COALESCE(g, ''), m, p"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(DailyStat._meta.db_table)} ({columns}) "
            f"SELECT %s, %s, {picked}, n, s, u FROM ({sql}) grouped",
            [grain, basis, spot_id, *params],
        )


def insert_coarse(grain, kept, spot_id):
    """A coarse grain's rows, summed from the finest grain's."""
    q = connection.ops.quote_name
    table = q(DailyStat._meta.db_table)
    dims = [
        q(DIM_COLUMNS[name]) if name in kept else ("''" if isinstance(blank, str) else "0")
        for name, blank in zip(DIMS, BLANK, strict=True)
    ]
    grouped = ["basis", "day", q("spot_id"), q("goal_pk")] + [q(DIM_COLUMNS[name]) for name in kept]
    sums = ", ".join(f"SUM({q(c)})" for c in SUMS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(q(c) for c in [*KEY, *SUMS])}) "
            f"SELECT %s, basis, day, {q('spot_id')}, {q('goal_pk')}, {', '.join(dims)}, {sums} "
            f"FROM {table} WHERE grain = %s AND {q('spot_id')} = %s GROUP BY {', '.join(grouped)}",
            [grain, FINEST, spot_id],
        )

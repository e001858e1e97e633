"""New conversions of a batch of decisions, inserted together when it ends.

A batch of queued postbacks (postbacks/incoming/batches.py) is decided in one
transaction whose statements must not grow with its size. Inside together():

- a new conversion (create) gets its id at once, from a block of `size` ids
  (the batch's rows: each makes one conversion at most) taken from the
  table's sequence in one statement, and its row is kept here;
- a change to one of them (Conversion.save) changes the kept row instead;
- both fire pre_save and post_save as a save does (the rollup counts them);
- when the block ends, the kept rows are inserted in one statement, with the
  values they were decided with (no auto_now of its own: `created` decided
  the rollup's day).

What reads conversions from the database in the meantime adds pending()'s
kept ones (Client._deciding_rows without a batch's loaded conversions,
postbacks/delivery/fanout.py's first event of a goal).
The block is the batch's transaction's: an error drops the kept rows with
the rollback. flush() writes them early: before a row decided in a savepoint
of its own, so that a rollback to it cannot leave its change in a kept row
(drop() forgets what that row made).
"""

import contextlib
import threading

from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

_local = threading.local()


def _kept():
    return getattr(_local, "rows", None)


@contextlib.contextmanager
def together(size):
    if _kept() is not None:
        yield  # an outer block inserts them
        return
    _local.rows, _local.ids, _local.size = {}, [], max(1, size)
    try:
        yield
        flush()
    finally:
        _local.rows = _local.ids = None


def create(model, **fields):
    """A new conversion: kept for the block's end inside together(), else saved."""
    if _kept() is None:
        return model.objects.create(**fields)
    obj = model(**fields)
    obj.pk = _next_id(model)
    obj.created = obj.updated = timezone.now()
    pre_save.send(sender=model, instance=obj, raw=False, using=connection.alias, update_fields=None)
    obj.set_reported_amount()
    obj._state.adding, obj._state.db = False, connection.alias
    _kept()[obj.pk] = obj
    post_save.send(
        sender=model,
        instance=obj,
        created=True,
        raw=False,
        using=connection.alias,
        update_fields=None,
    )
    return obj


def holds(obj):
    """Whether `obj` is a kept row (its save changes the row to insert)."""
    kept = _kept()
    return kept is not None and kept.get(obj.pk) is obj


def saved(obj, update_fields):
    """A save of a kept row: its values are the row's; the signals fire as for an update."""
    obj.updated = timezone.now()
    fields = frozenset(update_fields) if update_fields is not None else None
    model, alias = type(obj), connection.alias
    pre_save.send(sender=model, instance=obj, raw=False, using=alias, update_fields=fields)
    post_save.send(
        sender=model, instance=obj, created=False, raw=False, using=alias, update_fields=fields
    )


def pending(client_id, goal_id=None):
    """The kept conversions of a client (and goal), in id order."""
    return [
        c
        for c in (_kept() or {}).values()
        if c.client_id == client_id and goal_id in (None, c.goal_id)
    ]


def drop():
    """Forget the kept rows (their savepoint was rolled back)."""
    kept = _kept()
    if kept:
        kept.clear()


def flush():
    """Insert the kept rows now, in one statement."""
    kept = _kept()
    if not kept:
        return
    rows = list(kept.values())
    kept.clear()
    model = type(rows[0])
    fields = model._meta.concrete_fields
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] for obj in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {q(model._meta.db_table)} ({columns}) VALUES ({marks})", params
        )


def _next_id(model):
    """An id of the table's sequence, reserved a block at a time. Those a batch
    does not use (its duplicates, status changes) are skipped, as a rolled back
    insert's id is."""
    if not _local.ids:
        _local.ids = _reserve(model, _local.size)
    return _local.ids.pop(0)


def _reserve(model, count):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, model._meta.pk.column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite (AUTOINCREMENT): the table's row of sqlite_sequence is its
        # highest id ever; moving it on reserves the ids and takes the write
        # lock, as the batch's first write would.
        cursor.execute(
            "UPDATE sqlite_sequence SET seq = seq + %s WHERE name = %s RETURNING seq",
            [count, table],
        )
        row = cursor.fetchone()
        if row is None:  # no row was ever inserted: the sequence starts here
            q = connection.ops.quote_name
            cursor.execute(f"SELECT COALESCE(MAX({q(model._meta.pk.column)}), 0) FROM {q(table)}")
            start = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, start + count]
            )
            top = start + count
        else:
            top = row[0]
        return list(range(top - count + 1, top + 1))

"""Raw SQL's rows as models, for the reads of the hot paths.

Why the click, the incoming postback and a delivery loop's pass read with raw
SQL built once is said in postbacks/incoming/process.py (4.). QuerySet.raw would
turn the rows into models, but it works out the columns, their order and
their converters again for every query, O(columns²), which on those paths
cost more CPU than the query. A Reader does that once per model and thread
(converters belong to the thread's connection).
"""

import datetime
import functools
import threading

from django.conf import settings
from django.db import connection
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query


def columns_of(model, fields=(), alias=""):
    """The select list that `read_rows` reads: every column of `model` (or only its
    pk and `fields`), quoted, in the model's order, with `alias.` if given."""
    q, prefix = connection.ops.quote_name, f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{q(f.column)}" for f in _chosen(model, fields))


def read_rows(model, sql, params, fields=(), remember=True):
    """The rows of `sql`, which selects columns_of(model, fields), as instances of `model`.
    `remember`: post_init is sent (crm.stats remembers what a row was, for its
    save); rows only read need not (a save completes it from the database)."""
    with connection.cursor() as cursor:
        _c_times(cursor)
        cursor.execute(sql, params)
        return _reader(model, fields).models(cursor.fetchall(), remember)


def in_list(column, count):
    """`column` among `count` keys, which in_params passes. On PostgreSQL one
    array parameter: psycopg turns a statement's %s into its own markers anew
    for every long statement, and for a pixel batch's thousand keys that cost
    more than running it."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN ({', '.join(['%s'] * count)})"


def in_params(keys):
    """The parameters of in_list for these keys, prepared for the database."""
    return [list(keys)] if connection.vendor == "postgresql" else list(keys)


def read_one(model, field, value):
    """The instance of `model` whose `field` (a unique one) is `value`, or None."""
    prepared = model._meta.get_field(field).get_db_prep_value(value, connection)
    found = read_rows(model, _one_sql(model, field), [prepared])
    return found[0] if found else None


@functools.cache
def _one_sql(model, field):
    q = connection.ops.quote_name
    column = q(model._meta.get_field(field).column)
    return f"SELECT {columns_of(model)} FROM {q(model._meta.db_table)} WHERE {column} = %s"


def _chosen(model, fields):
    wanted = {model._meta.pk.name, *fields}
    return [f for f in model._meta.concrete_fields if not fields or f.name in wanted]


def _utc_text_times():
    """Whether the connection stores datetimes as SQLite does: the text of a naive UTC time."""
    return connection.vendor == "sqlite" and settings.USE_TZ and connection.timezone_name == "UTC"


def _utc_datetime(value, expression, connection):
    """What Django's SQLite converter makes of a stored datetime (aware, in
    UTC), in a fifth of its time: no setting read per value, no regex. A
    pixel's batch reads four thousand of them."""
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):  # the text, where sqlite3 did not parse it
        value = datetime.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _c_times(cursor):
    """On PostgreSQL in UTC, psycopg's own (C) loader of timestamptz for this
    cursor: it makes what Django's makes (an aware datetime in UTC, the
    connection's time zone) in a tenth of the time, and a pixel's batch reads
    three thousand of them. Django's is a Python subclass, kept elsewhere as it
    knows other time zones."""
    if connection.vendor == "postgresql" and connection.timezone_name == "UTC":
        cursor.cursor.adapters.register_loader(_timestamptz_oid(), _c_timestamptz())


@functools.cache
def _timestamptz_oid():
    from psycopg.postgres import types

    return types["timestamptz"].oid


@functools.cache
def _c_timestamptz():
    import psycopg
    from psycopg.pq import Format

    return psycopg.adapters.get_loader(_timestamptz_oid(), Format.TEXT)


class Reader:
    def __init__(self, model, fields):
        chosen = _chosen(model, fields)
        self.model, self.names = model, [f.attname for f in chosen]
        self.compiler = connection.ops.compiler("SQLCompiler")(Query(model), connection, None)
        self.converters = self.compiler.get_converters(
            [f.get_col(model._meta.db_table) for f in chosen]
        )
        if _utc_text_times():
            for i, f in enumerate(chosen):
                if i in self.converters and f.get_internal_type() == "DateTimeField":
                    self.converters[i] = ([_utc_datetime], self.converters[i][1])

    def models(self, rows, remember=True):
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        model, alias, names = self.model, connection.alias, self.names
        if pre_init.has_listeners(model):
            return [model.from_db(alias, names, row) for row in rows]
        # What Model.from_db makes, without its __init__'s walk over every field
        # and descriptor: a batch of a thousand pixel events spent more on that
        # than on its request. A field not read stays deferred, as from_db leaves it.
        made = []
        for row in rows:
            obj = model.__new__(model)
            state = obj._state = ModelState()
            state.adding, state.db = False, alias
            obj.__dict__.update(zip(names, row, strict=True))
            made.append(obj)
        if remember and post_init.has_listeners(model):  # crm.stats remembers what a row was
            for obj in made:
                post_init.send(sender=model, instance=obj)
        return made


_readers = threading.local()


def _reader(model, fields):
    cache = _readers.__dict__.setdefault("cache", {})
    key = (model, tuple(fields))
    if key not in cache:
        cache[key] = Reader(model, fields)
    return cache[key]

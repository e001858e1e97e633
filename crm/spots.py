"""Spots as the intake reads them, kept per process: by postback token with
their goals and partners, by slug for clicks.

The web request that queues a postback checks it against its spot (token,
caller, event word, status words) without a query, and a click finds its
spot without one: each process keeps the spots it read for
INCOMING_SPOT_CACHE seconds, and forgets them at once
when a spot, goal or partner is saved or deleted in this process. Another
process or node sees a change within those seconds. The workers decide
every queued row against a fresh read (find), so a stale copy can only
queue or refuse a request a few seconds early or late, never decide it. A
click made from a stale copy goes to the target URL the spot had a moment
before.
"""

import functools
import time
import uuid

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save

from crm.rows import columns_of, read_one, read_rows
from tracker.models import Goal, Partner, Spot

MOST = 1000  # spots kept per process; past that the cache starts again

_cache = {}  # (how, key) -> (time.monotonic() when read, spot)


def cached(token):
    """The spot of postback `token` (None: no such spot), read at most every
    INCOMING_SPOT_CACHE seconds."""
    return _kept("token", token, lambda t: find(t, with_partners=True))


def by_slug(slug):
    """The spot of click link /go/<slug> (None: none), kept as cached() keeps it."""
    return _kept("slug", slug, lambda s: read_one(Spot, "slug", s))


def _kept(how, key, read):
    now = time.monotonic()
    entry = _cache.get((how, key))
    if entry is not None and now - entry[0] < settings.INCOMING_SPOT_CACHE:
        return entry[1]
    spot = read(key)
    if spot is not None:  # unknown keys are not kept: anyone can make up many
        if len(_cache) >= MOST:
            _cache.clear()
        _cache[(how, key)] = (now, spot)
    return spot


def find(token, with_partners=False):
    """The spot of `token` with its goals (and partners), read now; None if there is none.
    Without its partners loaded, a request naming one reads them then."""
    try:
        token = uuid.UUID(token)
    except ValueError:
        return None
    spot = read_one(Spot, "postback_token", token)
    if spot is not None:
        # Its goals decide every event: read them once, with the spot.
        spot.loaded_goals = read_rows(Goal, _goals_sql(), [spot.pk])
        for goal in spot.loaded_goals:
            goal.spot = spot
        if with_partners:
            spot.loaded_partners = read_rows(Partner, _partners_sql(), [spot.pk])
    return spot


@functools.cache
def _goals_sql():  # raw (incoming/__init__.py, 4.): Meta.ordering would join the spot
    q = connection.ops.quote_name
    return (
        f"SELECT {columns_of(Goal)} FROM {q(Goal._meta.db_table)} WHERE spot_id = %s "
        f"ORDER BY {q('order')}, id"
    )


@functools.cache
def _partners_sql():
    q = connection.ops.quote_name
    return (
        f"SELECT {columns_of(Partner)} FROM {q(Partner._meta.db_table)} WHERE spot_id = %s "
        "ORDER BY slug"
    )


def forget(**kwargs):
    _cache.clear()


def connect():
    for model in (Spot, Goal, Partner):
        post_save.connect(forget, sender=model, dispatch_uid=f"spots_forget_{model.__name__}")
        post_delete.connect(forget, sender=model, dispatch_uid=f"spots_unforget_{model.__name__}")

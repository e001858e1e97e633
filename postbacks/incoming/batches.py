"""Queued incoming postbacks, decided by the workers a batch at a time.

The web request stored the row as queued and answered (process.enqueue);
every delivery loop (the embedded one, each RQ worker's) looks for them
every INCOMING_LINGER seconds and calls decide_queued() (postbacks/loops/intake.py),
the same code in both modes. The database is the queue: nothing in Redis is
needed to find them.

1. Claim: one transaction takes up to INCOMING_BATCH queued rows, oldest
   first, writing a claim of its own and a lease (INCOMING_LEASE seconds)
   on them. A row whose lease has lapsed (its worker died) is claimable
   again. Claims are taken one at a time (an advisory lock on PostgreSQL,
   the write lock on SQLite), so two workers never claim the same row.
2. Order per click: a row is not claimed while an older queued row of the
   same spot and click id is held by another worker (its lease runs, or it
   lapsed but the row is still locked: a slow worker is deciding it), so
   the rows of one client are decided in arrival order, also with several
   workers, and a status change never lands before the conversion it
   changes.
3. Decide: one transaction locks the rows still queued under this claim
   (a claim another worker took over is not touched), decides each in
   arrival order (a row that fails for a reason of its own rolls the batch
   back, and the batch runs again with that row in a savepoint of its own:
   it fails alone, its outcome says why and it can be replayed), inserts
   the batch's new conversions in one statement (crm/together.py; one the
   database refuses has the batch run again writing each at once, so that
   its row fails alone), adds the batch's rollup changes once per key, and
   writes every row's outcome in one statement: a fixed number of
   statements, whatever the batch's size. It commits whole or not at all,
   and is run again whole on a lost race, a lost connection or a locked
   database, while the lease lasts (tracker/retry.py): a row is never
   half-decided and never decided twice.
"""

import contextlib
import datetime
import functools
import logging
import time
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from crm import spots, stats, together
from crm.models import Client, Conversion
from crm.rows import columns_of, in_list, in_params, read_rows
from postbacks.delivery import fanout
from postbacks.delivery.batch import field_values
from postbacks.incoming import process
from postbacks.models import IncomingPostback
from tracker import metrics
from tracker.retry import conflict, retried_until, unreachable

log = logging.getLogger(__name__)

QUEUED = IncomingPostback.QUEUED
CLAIM_LOCK = 0x1C0_0001  # PostgreSQL advisory lock: one claim at a time
# Of the lease, what the decision may spend retrying before it gives the rows up.
RETRY_SHARE = 0.8


def decide_queued(limit=None):
    """Claim and decide one batch of queued rows; returns how many were claimed."""
    if not IncomingPostback.objects.filter(status=QUEUED).exists():
        return 0  # a read: no write transaction (on SQLite, the write lock) for nothing
    claim = uuid.uuid4().hex
    ids = claim_batch(claim, limit or settings.INCOMING_BATCH)
    if ids:
        decide_claimed(claim, len(ids))
    return len(ids)


def claim_batch(claim, limit):
    """Write `claim` and a lease on up to `limit` claimable rows; their ids."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK])
        now = timezone.now()
        queued = IncomingPostback.objects.filter(status=QUEUED)
        held_older = queued.filter(
            spot_id=OuterRef("spot_id"),
            click_id=OuterRef("click_id"),
            id__lt=OuterRef("id"),
            claimed_until__gte=now,
        )
        found = list(
            queued.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .exclude(Exists(held_older))
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("id", "spot_id", "click_id")[:limit]
        )
        ids = in_click_order(found, now)
        if ids:
            until = now + datetime.timedelta(seconds=settings.INCOMING_LEASE)
            IncomingPostback.objects.filter(id__in=ids).update(claim=claim, claimed_until=until)
    return ids


def in_click_order(found, now):
    """The ids of `found` (id, spot, click id) that no older row of their click
    holds back: one whose lease lapsed but that was not found (locked by a
    worker still deciding it past its lease) keeps the newer ones waiting."""
    ids = {pk for pk, _, _ in found}
    lapsed = IncomingPostback.objects.filter(
        status=QUEUED, claimed_until__lt=now, click_id__in={c for _, _, c in found}
    ).exclude(id__in=ids)
    first_held = {}
    for pk, spot_id, click_id in lapsed.values_list("id", "spot_id", "click_id"):
        key = (spot_id, click_id)
        first_held[key] = min(pk, first_held.get(key, pk))
    return [pk for pk, spot_id, click in found if pk < first_held.get((spot_id, click), pk + 1)]


class BadRow(Exception):
    """A row's decision failed for a reason of its own (not a lost race or connection)."""

    def __init__(self, pk):
        super().__init__(pk)
        self.pk = pk


def decide_claimed(claim, count=0):
    """Decide the rows of `claim`, retried whole while the lease lasts."""
    until = time.monotonic() + settings.INCOMING_LEASE * RETRY_SHARE
    alone = set()  # rows that failed: decided again in a savepoint of their own
    at_once = False  # each new conversion inserted when it is made
    while True:
        try:
            decided = retried_until(until, decide_batch, claim, alone, at_once)
            break
        except BadRow as e:
            alone.add(e.pk)  # the batch is run again; that row fails alone
        except Unwritten:
            # The batch again, its conversions written one by one: the row
            # whose conversion the database refuses fails alone, as above.
            at_once = True
        except Exception:
            # Left queued under a lapsing lease: a worker decides them again later.
            log.exception("Deciding %d queued incoming postback(s) failed; they stay queued", count)
            return []
    for row in decided:
        metrics.incoming(row.spot, row.status)  # once per decision, not per retried run
    return decided


class Unwritten(Exception):
    """The batch's new conversions, inserted together, were refused (crm/together.py)."""


def decide_batch(claim, alone=(), at_once=False):
    """One transaction: each row still queued under `claim` decided, in arrival order."""
    rows = list(
        IncomingPostback.objects.filter(claim=claim, status=QUEUED)
        .order_by("id")
        .select_for_update()
    )
    found = {}  # token -> spot, read once per batch and fresh
    for row in rows:
        if row.token not in found:
            found[row.token] = spots.find(row.token)
        row.spot = found[row.token]
    lock_clients(rows)
    with stats.gathered(), fanout.batched():
        decide_rows(rows, alone, at_once)
        write_outcomes(rows)
    return rows


def decide_rows(rows, alone, at_once):
    """Each row decided; their new conversions inserted together at the end,
    unless `at_once`."""
    block = contextlib.nullcontext() if at_once else together.together(len(rows))
    try:
        with block:
            for row in rows:
                decide_row(row, alone=row.pk in alone)
    except BadRow:
        raise
    except Exception as e:
        if at_once or conflict(e) or unreachable(e):
            raise  # the whole batch runs again, as a row's would
        raise Unwritten from e


def write_outcomes(rows):
    """Every row's outcome, one UPDATE run for all: bulk_update's CASE per column
    and row cost more CPU than deciding the rows."""
    fields = [
        IncomingPostback._meta.get_field(n) for n in [*process.OUTCOME_FIELDS, "claimed_until"]
    ]
    q = connection.ops.quote_name
    sets = ", ".join(f"{q(f.column)} = %s" for f in fields)
    sql = f"UPDATE {q(IncomingPostback._meta.db_table)} SET {sets} WHERE id = %s"
    params = [
        [f.get_db_prep_value(getattr(row, f.attname), connection) for f in fields] + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def lock_clients(rows):
    """Lock the clients the rows name, per spot in one statement and in id order
    (two batches never wait for each other in opposite orders), and give each
    spot its {click id: client or None} for process.find_client."""
    wanted = {}
    for row in rows:
        if row.spot is not None and row.click_id:
            wanted.setdefault(row.spot, set()).add(row.click_id)
    for spot, click_ids in wanted.items():
        ids = sorted(click_ids)
        listed = in_params(ids)
        clients = read_rows(Client, _lock_clients_sql(len(ids)), [spot.pk, *listed, *listed])
        by_click = {c.click_id: c for c in clients}
        # The team tracker's click id: the newest client with it, as find_client picks.
        by_cl_id = {}
        for c in sorted(clients, key=lambda c: (c.created, c.pk)):
            by_cl_id[c.cl_id] = c
        spot.locked_clients = {i: by_click.get(i) or by_cl_id.get(i) for i in ids}
        load_field_values(clients)
        load_conversions(spot, clients)


def load_conversions(spot, clients):
    """The clients' conversions that can decide an event, in one query
    (Client._deciding_rows picks from them): of the first deposit and
    registration goals, and those with a tid."""
    deciding = [g.pk for g in spot.goal_list() if g.token in ("dep", "reg")]
    found = {c.pk: [] for c in clients}
    rows = Conversion.objects.filter(client__in=clients).filter(
        Q(goal_id__in=deciding) | ~Q(tid="")
    )
    for conversion in rows.order_by("id"):
        found[conversion.client_id].append(conversion)
    for client in clients:
        client.loaded_conversions = found[client.pk]


def load_field_values(clients):
    """The clients' custom field values in one query (their macros and messages
    read them; process.apply_fields keeps them up to date)."""
    values = field_values([c.pk for c in clients])
    for client in clients:
        client.loaded_field_values = values[client.pk]


@functools.cache
def _lock_clients_sql(count):
    q = connection.ops.quote_name
    among = f"({in_list('click_id', count)} OR {in_list('cl_id', count)})"
    locked = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        f"SELECT {columns_of(Client)} FROM {q(Client._meta.db_table)} WHERE spot_id = %s "
        f"AND {among} ORDER BY id{locked}"
    )


def decide_row(row, alone=False):
    """Decide one row of the batch. A failure of its own raises BadRow, unless
    the row is decided `alone`: then in a savepoint, its outcome the error."""
    notes = process.storage_notes(row)
    if alone:
        together.flush()  # written before the savepoint: a rollback to it cannot half-undo them
        mark, messages = stats.gathered_so_far(), fanout.batch_mark()
    # No savepoint otherwise: two statements a row saved. A row that fails
    # rolls the batch back, and the batch runs again with that row alone.
    try:
        with transaction.atomic() if alone else contextlib.nullcontext():
            outcome = process.process(row, row.query, row.body)
    except Exception as e:
        if conflict(e) or unreachable(e):
            raise  # the whole batch runs again
        if not alone:
            raise BadRow(row.pk) from e
        stats.forget_since(mark)
        fanout.batch_forget(messages)
        together.drop()  # what the row made, rolled back with its savepoint
        log.exception("Incoming postback %s failed", row.pk)
        outcome = process.internal_error(e)
    process.fill(row, outcome, notes)
    row.claimed_until = None
    return outcome


def backlog():
    """(queued rows, seconds the oldest has waited) — /healthz and the admin home."""
    queued = IncomingPostback.objects.filter(status=QUEUED)
    oldest = queued.order_by("id").values_list("received", flat=True).first()
    if oldest is None:
        return 0, 0.0
    return queued.count(), max(0.0, (timezone.now() - oldest).total_seconds())

"""Sending due deliveries in batches: what every delivery loop runs.

Design constraints (those of the wing, delivery/__init__.py, hold as well):

1. Per delivery, the claim, the reads, the attempt row and the status update
   cost more than the HTTP request itself. So a batch is claimed, loaded and
   recorded with a handful of statements, whatever its size.
2. Only the loop's own thread touches the database (and, on PostgreSQL, its
   recorder's: 7.). The requests go out on a bounded pool of threads
   (POSTBACKS_SENDER_THREADS) that do nothing else, so a loop holds one
   database connection (two while a backlog is recorded behind it),
   whatever the size of its pool.
3. A loop claims only what it has room for: two deliveries per thread, one in
   flight and one ready. A slow receiver holds threads, not the deliveries of
   others, so fast receivers keep flowing on the threads left.
4. Claiming a batch is claiming each of its deliveries as attempts.claim does:
   FOR UPDATE SKIP LOCKED on PostgreSQL lets the loops of several workers
   take disjoint batches at once; on SQLite the IMMEDIATE transaction does it.
5. A claimed delivery is sent only if its attempt can end before its claim
   lapses (the wing's 3.): one that waited too long for a thread goes back
   to pending unsent, so no other sender can ever take it while it is sent.
6. Sends first: while a backlog is being claimed, the outcomes of the sends
   that ended wait (RECORD_AT_MOST at most, each well within its claim) and
   the next batch is claimed and sent before them. Recording costs a loop
   about as much as claiming and building (a pixel's thousand attempt rows
   and updates): written between two claims, it held every later event back
   by as much. What waits in memory is what a crash would send again, as
   the sends in flight are: at least once either way.
7. Behind, on PostgreSQL: while a backlog is claimed there, its outcomes
   are written by a thread of the loop's own (Recorder) on a connection of
   its own, one write at a time, while the loop claims and sends on: the
   loop thread waited on those writes for a third of its time, and the
   database had a core to spare. The rows are apart (the recorder's are
   claimed by this loop and sent; a claim takes pending or lapsed ones).
   When the backlog is drained, the loop waits for the recorder and records
   what is left itself, with its claim, as before. SQLite has one writer at
   a time, so there the loop records itself, as it does inside a caller's
   transaction (whose claims another connection could not see).
"""

import datetime
import functools
import logging
import operator
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from crm.models import Client, Conversion, CustomFieldValue
from crm.rows import columns_of, in_list, read_rows
from crm.rows import in_params as rows_in_params
from postbacks.delivery import attempts, order, pixel_batch, sender
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tracker import metrics
from tracker.models import Goal, Pixel, Spot
from tracker.retry import retried, retried_until

log = logging.getLogger(__name__)

# Outcomes of ended sends that may wait unrecorded while a backlog is claimed (6.).
RECORD_AT_MOST = 5000


def claim(limit, at=None):
    """Take up to `limit` due deliveries, oldest first; returns them as load
    reads them (their LOADED fields). Their claim lasts from `at` (now) for
    POSTBACKS_CLAIM_SECONDS.

    One statement (built once, as load's reads are): the claim is made on
    every pass of a loop, most of them at a trickle taking one delivery. It
    returns the rows it claimed: read again by their ids, they were a tenth
    of a pixel's batch of a thousand."""
    at = at or attempts.now()
    lease = datetime.timedelta(seconds=settings.POSTBACKS_CLAIM_SECONDS)
    ops = connection.ops
    now = ops.adapt_datetimefield_value(at)
    until = ops.adapt_datetimefield_value(at + lease)
    params = [Delivery.PENDING, now, limit, Delivery.SENDING, now, limit, limit]
    params += [Delivery.SENDING, until]
    # No savepoint inside step's transaction: its failure fails the step.
    with transaction.atomic(savepoint=False):
        return read_rows(Delivery, _claim_sql(), params, LOADED)


@functools.cache
def _claim_sql():
    """attempts.due_q's deliveries that no earlier one of their conversion to
    their target holds up (order.py), oldest first, marked as ours (4. above).

    The pending ones and those whose claim lapsed are picked apart, each in
    the order of the due index (status, next_attempt), so the database reads
    them in that order and stops at the LIMIT: picked together (an OR of the
    two), every due row of a backlog was read, tested and sorted to take the
    first few. Materialized, so that PostgreSQL runs each CTE, and so its
    LIMIT, once."""
    q = connection.ops.quote_name
    table = q(Delivery._meta.db_table)
    skip_locked = connection.features.has_select_for_update_skip_locked
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    ready = order.ready_sql("d")
    pending = (
        f"SELECT id, next_attempt FROM {table} d WHERE status = %s "
        f"AND (next_attempt IS NULL OR next_attempt <= %s) AND {ready} "
        f"ORDER BY next_attempt LIMIT %s{lock}"
    )
    lapsed = (
        f"SELECT id, next_attempt FROM {table} d WHERE status = %s AND claimed_until < %s "
        f"AND {ready} ORDER BY next_attempt LIMIT %s{lock}"
    )
    return (
        f"WITH pending AS MATERIALIZED ({pending}), lapsed AS MATERIALIZED ({lapsed}), "
        "due AS MATERIALIZED (SELECT id FROM (SELECT id, next_attempt FROM pending "
        "UNION ALL SELECT id, next_attempt FROM lapsed) x ORDER BY next_attempt LIMIT %s) "
        f"UPDATE {table} SET status = %s, claimed_until = %s "
        f"WHERE id IN (SELECT id FROM due) RETURNING {columns_of(Delivery, LOADED)}"
    )


# What sending reads of a delivery: its times and texts are only written, and
# converting four timestamps per row was a third of loading a batch.
LOADED = (
    "conversion",
    "postback",
    "pixel",
    "external_goal",
    "attempts",
    "event_status",
    "previous_status",
    "previous_amount",
    "event_amount",
    "event_currency",
    "event_time",
    "event_id",  # pixels send it: read with the rest, not once per delivery
    "throttled",
    "retry_until",
    "last_http_status",  # these two: whether it was ever tried (tried)
    "last_error",
    "next_attempt",  # the order they go in (load)
)
# What load sorts by when a claim has no next attempt (due at once): last, as
# PostgreSQL's ORDER BY next_attempt had them.
NEVER = datetime.datetime.max.replace(tzinfo=datetime.UTC)


def load(rows):
    """The claimed deliveries (claim's) with all their requests are built from.

    The spots, goals, targets and managers of a batch are few, and a
    conversion's targets (postbacks, pixels) are often several: each is read
    once and shared by its deliveries. The reads are raw SQL (rows_of builds
    each statement once per size): at a steady trickle a batch holds one or
    two deliveries, and the ORM's compiling of these nine queries cost a
    loop more CPU than the sends."""
    rows = sorted(rows, key=lambda d: d.next_attempt or NEVER)
    counts = attempt_counts([d.pk for d in rows if tried(d)])
    by_pk = in_bulk(Conversion, {d.conversion_id for d in rows})
    clients = in_bulk(Client, {c.client_id for c in by_pk.values()})
    spots = in_bulk(Spot, {c.spot_id for c in clients.values()})
    managers = in_bulk(get_user_model(), {c.manager_id for c in clients.values()})
    goals = in_bulk(Goal, {c.goal_id for c in by_pk.values()} | {d.external_goal_id for d in rows})
    postbacks = in_bulk(OutgoingPostback, {d.postback_id for d in rows})
    pixels = in_bulk(Pixel, {d.pixel_id for d in rows})
    fields = field_values(clients)
    for conversion in by_pk.values():
        client = clients[conversion.client_id]
        _attach(conversion, "client", client)
        _attach(client, "spot", spots[client.spot_id])
        _attach(client, "manager", managers.get(client.manager_id))
        client.loaded_field_values = fields[client.pk]  # what Client.field_values reads
        _attach(conversion, "goal", goals[conversion.goal_id])
    for d in rows:
        _attach(d, "conversion", by_pk[d.conversion_id])
        _attach(d, "postback", postbacks.get(d.postback_id))
        _attach(d, "pixel", pixels.get(d.pixel_id))
        _attach(d, "external_goal", goals.get(d.external_goal_id))
        # Attempts are numbered on from those logged (a resent delivery's count starts anew).
        d.logged = counts.get(d.pk, 0)
    return rows


def _attach(obj, name, related):
    """obj.name = related, for the row of obj's own foreign key: what the
    descriptor's assignment ends in, without its checks (a thousand events of a
    batch made it a tenth of loading them). A row that was not found (None for a
    key set) goes through the descriptor, which clears the key as before."""
    if related is None and getattr(obj, f"{name}_id") is not None:
        setattr(obj, name, None)
    else:
        obj._state.fields_cache[name] = related


@functools.cache
def _rows_sql(model, count, fields, order):
    q = connection.ops.quote_name
    table, pk = q(model._meta.db_table), q(model._meta.pk.column)
    sql = f"SELECT {columns_of(model, fields)} FROM {table} WHERE {in_list(pk, count)}"
    return sql + (f" ORDER BY {q(order)}" if order else "")


# Keys the database takes as they are: a thousand ids need no preparing each.
PLAIN_KEYS = ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField")


def in_params(field, pks):
    """The parameters of in_list for these keys of `field`."""
    return rows_in_params(_keys(field, pks))


def _keys(field, pks):
    kind = field.get_internal_type()
    if kind in PLAIN_KEYS and all(type(pk) is int for pk in pks):
        return list(pks)
    if kind == "UUIDField" and all(type(pk) is uuid.UUID for pk in pks):
        # What UUIDField stores: the UUID itself where the database has the type, else its hex.
        return list(pks) if connection.features.has_native_uuid_field else [pk.hex for pk in pks]
    return [field.get_db_prep_value(pk, connection) for pk in pks]


def rows_of(model, pks, fields=(), order=""):
    """The rows of `model` with these pks (only `fields` and the pk, if given), as models."""
    pks = _sorted(pk for pk in set(pks) if pk is not None)  # sorted: one statement per size
    if not pks:
        return []
    sql = _rows_sql(model, len(pks), fields, order)
    # Sending only reads them: a thousand conversions' post_init (crm.stats)
    # was a thirtieth of a pixel's batch.
    return read_rows(model, sql, in_params(model._meta.pk, pks), fields, remember=False)


def _sorted(pks):
    """Keys in order; UUIDs by their number (comparing a thousand UUIDs runs
    UUID.__lt__ ten thousand times)."""
    pks = list(pks)
    if pks and type(pks[0]) is uuid.UUID:
        return sorted(pks, key=operator.attrgetter("int"))
    return sorted(pks)


def in_bulk(model, pks):
    """{pk: instance}, as QuerySet.in_bulk gives, without compiling a query."""
    return {obj.pk: obj for obj in rows_of(model, pks)}


def tried(d):
    """Whether the delivery may have attempts logged. One never tried has none:
    no attempt counted, none throttled, no answer or error kept (a resend
    starts the count anew but keeps the last answer and error). Most of a
    backlog is first sends, whose counting was a tenth of loading a batch."""
    return bool(d.attempts or d.throttled or d.last_http_status is not None or d.last_error)


def attempt_counts(ids):
    """{delivery id: attempts logged}."""
    if not ids:
        return {}
    field = DeliveryAttempt._meta.get_field("delivery")
    q = connection.ops.quote_name
    sql = (
        f"SELECT {q(field.column)}, COUNT(*) FROM {q(DeliveryAttempt._meta.db_table)} "
        f"WHERE {in_list(q(field.column), len(ids))} GROUP BY {q(field.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, in_params(field.target_field, ids))
        return {field.target_field.to_python(k): n for k, n in cursor.fetchall()}


def field_values(clients):
    """{client pk: {custom field key: value}}."""
    fields = {pk: {} for pk in clients}
    if not fields:
        return fields
    value, custom = CustomFieldValue._meta, CustomFieldValue._meta.get_field("field").related_model
    q = connection.ops.quote_name
    sql = (
        f"SELECT v.client_id, f.{q('key')}, v.{q('value')} FROM {q(value.db_table)} v "
        f"JOIN {q(custom._meta.db_table)} f ON f.id = v.field_id "
        f"WHERE v.client_id IN ({', '.join(['%s'] * len(fields))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(fields))
        for client_id, key, text in cursor.fetchall():
            fields[client_id][key] = text
    return fields


def next_due():
    """When the next delivery falls due (a pending one, or a claim that lapses), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_next_due_sql(), [Delivery.PENDING, Delivery.SENDING])
        times = cursor.fetchone()
    return min((_datetime(t) for t in times if t is not None), default=None)


@functools.cache
def _next_due_sql():
    table = connection.ops.quote_name(Delivery._meta.db_table)
    # One an earlier delivery holds up is due when that one is done, not before:
    # counted, a retry hours away would keep the loop looking without pause.
    ready = order.ready_sql("d")
    pending = f"SELECT MIN(next_attempt) FROM {table} d WHERE status = %s AND {ready}"
    lapse = f"SELECT MIN(claimed_until) FROM {table} WHERE status = %s"
    return f"SELECT ({pending}), ({lapse})"


def _datetime(value):
    """A timestamp as the database gave it: SQLite gives its text, in UTC."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return timezone.make_aware(value, datetime.UTC) if timezone.is_naive(value) else value


@functools.cache
def _succeeded_sql(count):
    table = connection.ops.quote_name(Delivery._meta.db_table)
    return (
        f"UPDATE {table} SET status = %s, attempts = attempts + 1, claimed_until = NULL, "
        f"last_error = '', last_http_status = %s, next_attempt = NULL, updated = %s "
        f"WHERE {in_list('id', count)}"
    )


def send(d, req, latest):
    """On a pool thread: the result of sending `d`, or None when it started too late."""
    if time.monotonic() > latest:
        return None
    return attempts.send(req, d.postback, d.pk)


class Pipeline:
    """One loop's sender: claims what it has room for, sends it on its threads,
    and records what came back in bulk. Driven by one thread, the loop's.

    It works in halves: the loop is woken when as many sends have ended as
    there are threads (or all of them), and then records those and claims as
    many again, so a busy loop writes and claims batches of a useful size,
    not one delivery per ended send."""

    def __init__(self, threads=None, wake=None):
        self.threads = threads or settings.POSTBACKS_SENDER_THREADS
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="postback-send")
        self.wake = wake or threading.Event()
        self.lock = threading.Lock()
        self.ended = []  # (delivery, request, result) of sends not yet recorded
        # (delivery, request, result, ok, reason) of the sends that ended, kept
        # until the write of their outcomes commits (write).
        self.unrecorded = []
        self.again = False  # a run of the write of unrecorded began: the next one checks (holding)
        self.in_flight = 0  # sent or sending, not yet recorded
        self.handled = 0
        self.more = False
        self.recorder = Recorder(self)

    def room(self):
        return 2 * self.threads - self.in_flight

    def full(self):
        return self.room() < self.threads

    def step(self):
        """Record what came back, then claim and start what fits; returns how many it claimed.

        Recording and claiming share one transaction: one commit (one disk
        flush on PostgreSQL) per step, not two. `more` says the claim took all
        it had room for, so more may be due than this loop can take.

        Sends first (6. above): while more is due, a step claims without
        recording, until RECORD_AT_MOST outcomes wait or the backlog is
        drained; then they are recorded at once, in a transaction of their own.
        On PostgreSQL the recorder writes them meanwhile (7. above)."""
        self.collect()
        room = 0 if self.full() else self.room()
        if self.more and self.recorder.usable():
            self.recorder.take()  # written behind (7.)
            record = False
        else:
            self.recorder.wait()
            record = not (room and self.more and len(self.unrecorded) < RECORD_AT_MOST)
        claimed_rows, lease, claimed = self.write(
            self.record_and_claim, room, record, record=record
        )
        if room:  # full, it claimed nothing and learnt nothing new
            self.more = len(claimed_rows) >= room  # more: a pixel's batch claimed on
        if claimed_rows:
            deliveries = load(claimed_rows)
            for d in deliveries:
                d.lease = lease  # its claimed_until: its outcome is written only while it holds
            self.start(deliveries, claimed)
        if not record and not self.more:
            self.record()  # drained: what was sent is recorded now, not on the next wake
        return len(claimed_rows)

    def record_and_claim(self, room, record=True):
        """One run of step's transaction: ([claimed deliveries], their claimed_until,
        monotonic then)."""
        if record:
            self.write_outcomes()
        at, claimed = attempts.now(), time.monotonic()
        rows = claim(room, at) if room else []
        rows += pixel_batch.claim_more([d.pk for d in rows], at, LOADED)  # a pixel's batch
        return rows, at + datetime.timedelta(seconds=settings.POSTBACKS_CLAIM_SECONDS), claimed

    def start(self, deliveries, claimed):
        deliveries = pixel_batch.take(self, deliveries, claimed)  # a pixel's events together
        slots = {}  # postback id -> its next free slot, once a delivery of it found none now
        deferred = {}  # slot -> delivery ids
        for d in deliveries:
            req = self.prepare(d)
            if req is None:
                self.handled += 1
                continue
            pb = d.postback
            if pb is not None and pb.max_rps:
                slot = slots.get(pb.pk) or attempts.reserve_slot(pb)
                if slot is not None:
                    slots[pb.pk] = slot
                    deferred.setdefault(slot, []).append(d.pk)
                    continue
            with self.lock:
                self.in_flight += 1
            # The latest start from which the attempt still ends within the claim.
            longest = attempts.attempt_timeout(pb) + sender.DEADLINE_SLACK + 1
            latest = claimed + settings.POSTBACKS_CLAIM_SECONDS - longest
            future = self.pool.submit(send, d, req, latest)
            future.add_done_callback(lambda f, d=d, req=req: self.done(d, req, f.result()))
        for slot, ids in deferred.items():
            attempts.defer(ids, slot)
            self.handled += len(ids)

    def prepare(self, d):
        """The request of `d`, or None when it was held or cannot be built."""
        pb = d.postback
        if pb is not None and not pb.enabled:
            attempts.hold(d, pb)
            return None
        try:
            return attempts.build_request(d)
        except Exception as e:  # a broken template must not stop the loop
            log.exception("Cannot build delivery %s", d.pk)
            attempts.finish(d, Delivery.FAILED, f"Cannot build the request: {e}")
            return None

    def done(self, d, req, result):  # on a pool thread, as send: no database here
        with self.lock:
            self.ended.append((d, req, result))
            if len(self.ended) >= min(self.threads, self.in_flight):
                self.wake.set()

    def collect(self):
        """Take the sends that ended from the pool's threads, judged, into unrecorded."""
        with self.lock:
            ended, self.ended = self.ended, []
            self.in_flight -= len(ended)
        ended = pixel_batch.expand(ended)  # a batch sent is one send, a delivery each here
        self.handled += len(ended)
        sent = []
        for d, req, result in ended:
            judged = (None, "") if result is None else pixel_batch.judge(d, result)
            self.unrecorded.append((d, req, result, *judged))
            if result is not None:
                sent.append((d, result, judged[0]))
        metrics.delivered_all(sent)  # counted once, when judged: not per retried write

    def record(self):
        """Write the attempts and outcomes of the sends that ended, in one transaction."""
        self.collect()
        self.recorder.wait()
        if self.unrecorded:
            self.write(self.write_outcomes)

    def write(self, work, *args, record=True):
        """work(*args) in a transaction of its own. With outcomes to record, a
        send that happened must not go unrecorded (it would be sent again once
        its claim lapsed): the write is run again on a lost connection or a
        locked database too, until the last of their claims lapses. Outcomes
        stay until their write commits; those whose claim lapsed are given up.
        `record`: whether `work` records them (a step that claims first does not)."""
        if not (record and self.unrecorded):
            return retried(work, *args)
        until = attempts.lease_end([d.lease for d, *_ in self.unrecorded])
        try:
            answer = retried_until(until, work, *args)
        except DatabaseError:
            self.give_up()
            raise
        self.unrecorded = []
        self.again = False
        return answer

    def give_up(self):
        """Drop the outcomes whose claim lapsed: another sender may be sending them again."""
        self.unrecorded = unlapsed(self.unrecorded)

    def write_outcomes(self):
        """Write the attempts and outcomes of unrecorded (in write's transaction).

        Only the deliveries this loop still holds are updated: one whose claim
        lapsed and another sender took is that sender's now. Every request
        made gets its attempt row, unless a run whose commit seemed to fail
        wrote it (its answer, not the commit, was lost)."""
        if not self.unrecorded:
            return
        again, self.again = self.again, True
        write_outcomes(self.unrecorded, again)

    def close(self):
        """Let the sends in flight end, and record them."""
        self.pool.shutdown(wait=True)
        try:
            self.record()
        finally:
            self.recorder.close()


def unlapsed(unrecorded):
    """The outcomes of `unrecorded` whose claim still holds; those whose claim
    lapsed are dropped, logged: another sender may be sending them again."""
    at = attempts.now()
    lapsed = [e for e in unrecorded if e[0].lease <= at]
    if lapsed:
        log.error(
            "The outcomes of deliveries %s could not be recorded before their claim "
            "lapsed: those that were sent may be sent again",
            ", ".join(str(e[0].pk) for e in lapsed),
        )
    return [e for e in unrecorded if e[0].lease > at]


def write_outcomes(unrecorded, again):
    """Write the attempts and outcomes of `unrecorded` (in the caller's
    transaction); `again`: an earlier run of this write may have committed.

    Only the deliveries this loop still holds are updated: one whose claim
    lapsed and another sender took is that sender's now. Every request made
    gets its attempt row, unless a run whose commit seemed to fail wrote it
    (its answer, not the commit, was lost)."""
    if not unrecorded:
        return
    held = attempts.holding({d.pk: d.lease for d, *_ in unrecorded}, again)
    mine = [e for e in unrecorded if e[0].pk in held]
    gone = [e for e in unrecorded if e[0].pk not in held and e[2] is not None]
    if gone:
        done = attempts.logged({d.pk: d.logged + 1 for d, *_ in gone})
        gone = [e for e in gone if e[0].pk not in done]
        if gone:
            log.warning(
                "Deliveries %s were taken by another sender before their outcome "
                "was written: only their attempts are logged",
                ", ".join(str(e[0].pk) for e in gone),
            )
    sent = [e for e in mine if e[2] is not None]
    unsent = [d.pk for d, _, result, _, _ in mine if result is None]
    attempts.insert_attempts([(*e, e[0].logged + 1) for e in sent + gone])
    succeeded([(d, result.status) for d, _, result, ok, _ in sent if ok])
    for d, _, result, ok, reason in sent:
        if not ok:
            if d.postback is not None:
                attempts.note_failure(d.postback, reason)
            attempts.retry_or_fail(d, result, reason)
    if unsent:  # due again at once; not an attempt
        attempts.defer(unsent, attempts.now())


def succeeded(answered):
    """Mark [(delivery, HTTP status)] delivered: one statement per status code
    (nearly always one, 200), as each keeps its code for the list."""
    if not answered:
        return
    by_status = {}
    for d, status in answered:
        by_status.setdefault(status, []).append(d.pk)
    at = connection.ops.adapt_datetimefield_value(attempts.now())
    with connection.cursor() as cursor:
        for status, ids in sorted(by_status.items()):
            ids = _sorted(ids)
            params = [Delivery.SUCCESS, status, at, *in_params(Delivery._meta.pk, ids)]
            cursor.execute(_succeeded_sql(len(ids)), params)
    deliveries = [d for d, _ in answered]
    recovered = {
        d.postback_id for d in deliveries if d.postback and d.postback.consecutive_failures
    }
    if recovered:
        OutgoingPostback.objects.filter(pk__in=recovered).update(consecutive_failures=0)


class Recorder:
    """Writes a loop's outcomes behind it (7. above): on a thread and a
    connection of its own, one write at a time."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.pool = None  # its thread, started with the first write behind
        self.future = None

    def usable(self):
        """Whether a write behind the loop can be made: not on SQLite (one
        writer), not inside a caller's transaction (uncommitted claims)."""
        return connection.vendor == "postgresql" and not connection.in_atomic_block

    def busy(self):
        return self.future is not None and not self.future.done()

    def take(self):
        """Hand the pipeline's unrecorded outcomes over, when the last write
        has ended (or RECORD_AT_MOST wait: then after it); else they wait."""
        pipeline = self.pipeline
        if not pipeline.unrecorded:
            return
        if self.busy() and len(pipeline.unrecorded) < RECORD_AT_MOST:
            return
        self.wait()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="postback-record")
        entries, again = pipeline.unrecorded, pipeline.again
        pipeline.unrecorded, pipeline.again = [], False
        self.future = self.pool.submit(self.write, entries, again)

    def write(self, entries, again):
        """On the recorder's thread: Pipeline.write's write, retried until the
        last of the claims lapses. Returns the outcomes it could not write
        whose claims still hold, for the loop to write (wait); as give_up
        does, those whose claims lapsed are dropped. `again`: the loop ran
        this write already, and it may have committed."""
        runs = [again] if again else []  # a run after one that seemed to fail checks (holding)

        def run():
            runs.append(1)
            write_outcomes(entries, len(runs) > 1)

        try:
            retried_until(attempts.lease_end([d.lease for d, *_ in entries]), run)
        except DatabaseError as error:
            log.warning("Writing the outcomes behind the loop failed: %s", error)
            return unlapsed(entries)
        finally:
            connections.close_all()  # this thread's: back to the pool between writes
        return []

    def wait(self):
        """Until the write behind has ended. What it could not write goes back
        to the loop's unrecorded, checked when written (it may have committed)."""
        future, self.future = self.future, None
        left = future.result() if future is not None else []
        if left:
            self.pipeline.unrecorded[:0] = left
            self.pipeline.again = True

    def close(self):
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
                self.pool = None


def send_due(stop=None):
    """Send everything due now in this process, then return how many were
    handled: `deliver --once`, `sweep_deliveries`, a burst worker, a job
    without a loop in its process."""
    attempts.release_stray_holds()
    pipeline = Pipeline()
    try:
        while not (stop and stop.is_set()):
            pipeline.wake.clear()  # before looking: an end of a send from now on wakes the wait
            if pipeline.step():
                continue
            if not pipeline.in_flight:
                break
            pipeline.wake.wait(1.0)
    finally:
        pipeline.close()
    return pipeline.handled

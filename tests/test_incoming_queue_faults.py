"""Queued incoming postbacks are decided exactly once and in order per client,
whatever happens to the worker deciding them (postbacks/incoming/batches.py).

Real processes on the real database: the postbacks go through the endpoint
and are stored queued; workers are separate `python -c` processes calling
decide_queued(), so they need a database other processes can open (the
PostgreSQL pass). A second connection holds a lock the worker's decision must
wait for, which stops it in the middle of a batch at a known point; there it
is killed, or its connection is terminated. The embedded loop's locked SQLite
database is the SQLite pass's test.

Every test ends with the same check: nothing queued, each row's outcome the
one its arrival order gives, one conversion per accepted row, one delivery per
accepted or updated row, and the rollup equal to its rebuild from the rows.
"""

import contextlib
import datetime
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.utils import timezone

from crm import stats
from crm.models import Client, Conversion, DailyStat
from postbacks.incoming import batches
from postbacks.loops import embedded
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tests.test_outcomes_survive import wait_until
from tracker.models import STATUS_REJECTED, Spot

ROOT = Path(__file__).resolve().parent.parent
ACCEPTED, UPDATED = IncomingPostback.ACCEPTED, IncomingPostback.UPDATED

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="worker processes need a database they can open, and the faults (row locks, "
    "pg_terminate_backend) are PostgreSQL's; the SQLite pass has the embedded loop's test",
)

# A worker: decides one batch ("once"), or until nothing is queued ("drain",
# waiting its turn while the other worker holds what is left). "wait": ready,
# it waits for a line on stdin, so that two workers start together.
WORKER = """
import sys, time
import django
django.setup()
from postbacks.incoming import batches
if "wait" in sys.argv:
    print("ready", flush=True)
    sys.stdin.readline()
passes = []
while True:
    passes.append(batches.decide_queued())
    if "once" in sys.argv or not batches.backlog()[0]:
        break
    if not passes[-1]:
        time.sleep(0.01)
print("claimed", sum(passes), "in passes", passes, flush=True)
"""


@pytest.fixture
def queued_spot(transactional_db):
    """A spot whose postbacks are queued, with a target that is off: each
    conversion made or changed leaves a held delivery and nothing is sent."""
    spot = Spot.objects.create(name="Queued", slug="queued", currency="USD")
    OutgoingPostback.objects.create(
        spot=spot, name="Off", url="https://t.example/?s={status}", enabled=False
    )
    return spot


# -- the postbacks ---------------------------------------------------------------


def deposits_and_changes(i):
    """(params, expected status) of one client's postbacks: a registration, a
    first deposit, a repeat deposit with its own tid, a status change of each."""
    return [
        ({"goal": "reg"}, ACCEPTED),
        ({"goal": "dep", "sum": "10", "tid": f"f{i}"}, ACCEPTED),
        ({"goal": "dep", "sum": "25", "tid": f"r{i}"}, ACCEPTED),  # a repeat deposit
        ({"goal": "dep", "tid": f"f{i}", "status": "pending"}, UPDATED),
        ({"goal": "dep", "tid": f"r{i}", "status": STATUS_REJECTED}, UPDATED),
    ]


def status_story(i):
    """A deposit and a repeat deposit whose statuses change again and again:
    decided out of order, a change would make a conversion of its own."""
    a, b = f"a{i}", f"b{i}"
    rows = [({"goal": "dep", "sum": "10", "tid": a}, ACCEPTED)]
    for tid, status in [
        (a, "pending"),
        (b, None),  # the repeat deposit arrives
        (a, "rejected"),
        (b, "pending"),
        (a, "approved"),
        (b, "rejected"),
        (a, "pending"),
        (b, "approved"),
        (a, "rejected"),
    ] + [(a, "approved")] * (i % 2):
        if status is None:
            rows.append(({"goal": "dep", "sum": "5", "tid": tid}, ACCEPTED))
        else:
            rows.append(({"goal": "dep", "tid": tid, "status": status}, UPDATED))
    return rows


def interleaved(stories, seed):
    """(client index, params, expected status) of all clients' postbacks, each
    client's in its order, the clients mixed as they arrive in life."""
    rng = random.Random(seed)
    left = {i: list(story) for i, story in enumerate(stories)}
    out = []
    while left:
        i = rng.choice(sorted(left))
        params, status = left[i].pop(0)
        out.append((i, params, status))
        if not left[i]:
            del left[i]
    return out


def send_all(client, spot, leads, arrivals):
    """Each postback through the endpoint, answered queued; the rows with their
    client and expected status, in arrival order."""
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    sent = []
    for i, params, status in arrivals:
        answer = client.get(url, {"clickid": leads[i].click_id, **params})
        assert answer.status_code == 200, answer.content
        assert answer.json()["status"] == IncomingPostback.QUEUED
        sent.append((answer.json()["id"], leads[i], status))
    return sent


def new_client(spot, i):
    # From an ad (the target's default wants that), in one of three campaigns.
    return Client.objects.create(spot=spot, name=f"c{i}", advert_campaign_id=f"camp{i % 3}")


def backlog(client, spot, stories, seed):
    leads = [new_client(spot, i) for i in range(len(stories))]
    return send_all(client, spot, leads, interleaved(stories, seed))


def latest_first_row(sent):
    """The client whose first postback arrived last: a worker deciding the batch
    in arrival order has decided the others' first rows before it reaches it."""
    first = {}
    for row_id, lead, _ in sent:
        first.setdefault(lead.pk, (row_id, lead))
    return max(first.values(), key=lambda found: found[0])[1]


# -- the checks --------------------------------------------------------------------


def rollup(spot):
    """The spot's rollup rows that count something, as comparable tuples."""
    rows = DailyStat.objects.filter(spot=spot).values_list(*stats.KEY, *stats.SUMS)
    return sorted(r for r in rows if any(r[-len(stats.SUMS) :]))


def assert_decided_once(spot, sent):
    rows = {r.pk: r for r in IncomingPostback.objects.filter(spot=spot)}
    assert not IncomingPostback.objects.filter(status=IncomingPostback.QUEUED).exists()
    # Each row's outcome is the one of its arrival order; none was decided half.
    outcomes = [(rows[pk].status, rows[pk].client_id) for pk, _, _ in sent]
    assert outcomes == [(status, lead.pk) for _, lead, status in sent]
    assert all(r.processed and r.claimed_until is None and r.conversion_id for r in rows.values())
    # One conversion per accepted row, no other: a row decided twice would add one.
    made = [rows[pk].conversion_id for pk, _, status in sent if status == ACCEPTED]
    assert sorted(made) == sorted(Conversion.objects.filter(spot=spot).values_list("pk", flat=True))
    # One delivery to the target per conversion made or changed, none twice.
    events = Counter(r.conversion_id for r in rows.values() if r.status in (ACCEPTED, UPDATED))
    assert Counter(Delivery.objects.values_list("conversion_id", flat=True)) == events
    # Held, as the target is off (an older change's superseded by a newer one's).
    assert set(Delivery.objects.values_list("status", flat=True)) <= {
        Delivery.HELD,
        Delivery.SUPERSEDED,
    }
    # The rollup counts each conversion once: as its rows say, and as rebuilt from them.
    counted = Conversion.objects.filter(spot=spot).exclude(status=STATUS_REJECTED).count()
    by_day = DailyStat.objects.filter(spot=spot, grain="", basis=DailyStat.CONVERSION)
    assert sum(by_day.values_list("count", flat=True)) == counted
    kept = rollup(spot)
    stats.rebuild_spot(spot.pk)
    assert kept == rollup(spot)


def final_conversions(spot):
    return {
        (c.client_id, c.goal.token, c.tid): (c.status, c.amount)
        for c in Conversion.objects.filter(spot=spot).select_related("goal")
    }


def story_end(leads, stories):
    """(client, goal, tid) -> (status, amount) after each story in its order."""
    out = {}
    for lead, story in zip(leads, stories, strict=True):
        deposits = {}
        for params, _ in story:
            tid = params["tid"]
            if tid not in deposits:
                goal = "dep" if not deposits else "redep"
                deposits[tid] = [goal, "approved", params["sum"]]
            if "status" in params:
                deposits[tid][1] = params["status"]
        for tid, (goal, status, amount) in deposits.items():
            out[(lead.pk, goal, tid)] = (status, int(amount))
    return out


# -- processes and the database ------------------------------------------------------


def worker_env(name, **settings):
    """A worker process's environment: the test database, no Redis (a decision
    wakes no loop), `name` as its connections' application_name."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracker.settings",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": "",
        "SECRET_KEY": "test-incoming-faults",
        "PGAPPNAME": name,  # libpq's: how the test finds the worker's backend
        **settings,
    }


class Worker:
    """A worker process, its output in a file (a pipe could fill up and stall it)."""

    def __init__(self, tmp_path, name, *modes, **settings):
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WORKER, *modes],
                cwd=ROOT,
                env=worker_env(name, **settings),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self):
        return self.log_path.read_text(errors="replace")

    def go(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def wait_ok(self, timeout=60):
        assert self.proc.wait(timeout) == 0, self.log()[-3000:]
        return self.log()

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@contextlib.contextmanager
def workers(tmp_path, *specs):
    started = []
    try:
        for name, modes, settings in specs:
            started.append(Worker(tmp_path, name, *modes, **settings))
        yield started
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.kill()


@contextlib.contextmanager
def locker():
    """A connection of the test's own, in a transaction: the locks it takes
    hold until it rolls back."""
    import psycopg

    s = connection.settings_dict
    conn = psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
        host=s["HOST"] or None, port=s["PORT"] or None, autocommit=False,
    )  # fmt: skip
    try:
        yield conn
    finally:
        conn.close()


def lock_client(conn, sent):
    """Hold the row of the client whose first postback arrived last: the worker
    has claimed its batch and waits as its decision locks the batch's clients
    (batches.lock_clients), before it writes anything. (query waited in, wrote)"""
    lead = latest_first_row(sent)
    conn.execute(f'SELECT 1 FROM "{Client._meta.db_table}" WHERE id = %s FOR UPDATE', [lead.pk])
    return f'FROM "{Client._meta.db_table}"', False


def lock_rollup(conn, sent):
    """Let the rollup be read, not written: the worker decides every row, then
    waits to add the batch's rollup changes, its last write. (query waited in, wrote)"""
    conn.execute(f'LOCK TABLE "{DailyStat._meta.db_table}" IN SHARE MODE')
    return f'INSERT INTO "{DailyStat._meta.db_table}"', True


def backends(conn, name, waiting=False):
    """{pid: query} of the backends of the worker called `name` (those waiting on a lock)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")  # read afresh inside the transaction
    waits = " AND wait_event_type = 'Lock'" if waiting else ""
    rows = conn.execute(
        f"SELECT pid, query FROM pg_stat_activity WHERE application_name = %s{waits}", [name]
    ).fetchall()
    return dict(rows)


def blocked_backend(conn, name, not_pid=None):
    """(pid, query) of the worker's backend once it waits on the lock (another
    backend than `not_pid`)."""
    found = {}

    def blocked():
        found.clear()
        found.update(backends(conn, name, waiting=True))
        found.pop(not_pid, None)
        return found

    wait_until(blocked, 20, f"{name} to wait on the lock")
    [(pid, query)] = found.items()
    return pid, query


def wrote_conversions(conn, pid):
    """Whether the backend's open transaction has written conversions: it stopped
    in the middle of its batch, not before it."""
    return conn.execute(
        "SELECT count(*) FROM pg_locks WHERE pid = %s AND granted "
        "AND relation = %s::regclass AND mode = 'RowExclusiveLock'",
        [pid, Conversion._meta.db_table],
    ).fetchone()[0]


def assert_nothing_decided(spot, count):
    assert (
        IncomingPostback.objects.filter(spot=spot, status=IncomingPostback.QUEUED).count() == count
    )
    assert not Conversion.objects.exists() and not Delivery.objects.exists()
    assert not DailyStat.objects.filter(basis=DailyStat.CONVERSION).exists()


# -- 1. a worker killed mid-batch ---------------------------------------------------


@postgresql_only
def test_a_worker_killed_mid_batch_leaves_it_to_another_worker_decided_exactly_once(
    client, queued_spot, tmp_path
):
    sent = backlog(client, queued_spot, [deposits_and_changes(i) for i in range(10)], seed=1)
    assert len(sent) == 50
    with locker() as conn, workers(tmp_path, ("hfault-killed", ["once"], {})) as [killed]:
        waits_in, _ = lock_rollup(conn, sent)  # when every row is decided, not committed
        pid, query = blocked_backend(conn, killed.name)
        assert waits_in in query and wrote_conversions(conn, pid)
        killed.kill()
        conn.rollback()  # its backend goes on, finds no one at the other end and ends
        wait_until(lambda: pid not in backends(conn, killed.name), 20, "the backend to end")
    # Its transaction was rolled back whole; its claim stays on the rows.
    assert_nothing_decided(queued_spot, 50)
    assert IncomingPostback.objects.filter(claimed_until__gt=timezone.now()).count() == 50
    assert batches.decide_queued() == 0  # while its lease lasts, no other worker takes them
    # The lease (INCOMING_LEASE, 60 s) lapses by itself; the test moves it to the
    # past instead of waiting for it.
    IncomingPostback.objects.update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    with workers(tmp_path, ("hfault-next", ["drain"], {})) as [following]:
        assert "claimed 50 " in following.wait_ok()
    assert_decided_once(queued_spot, sent)


# -- 2. the decision's connection terminated -----------------------------------------


@postgresql_only
@pytest.mark.parametrize("lock", [lock_client, lock_rollup], ids=["a-client", "the-rollup"])
@pytest.mark.parametrize("pool", ["true", "false"], ids=["pool", "no-pool"])
def test_a_batch_whose_connection_is_terminated_is_decided_again_whole_by_its_worker(
    client, queued_spot, tmp_path, lock, pool
):
    sent = backlog(client, queued_spot, [deposits_and_changes(i) for i in range(6)], seed=2)
    spec = ("hfault-retried", ["once"], {"DATABASE_POOL": pool, "INCOMING_LEASE": "20"})
    with locker() as conn, workers(tmp_path, spec) as [worker]:
        waits_in, wrote = lock(conn, sent)
        pid, query = blocked_backend(conn, worker.name)
        assert waits_in in query and bool(wrote_conversions(conn, pid)) == wrote
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        # The same process runs the batch again on a new connection, and waits anew.
        _, query = blocked_backend(conn, worker.name, not_pid=pid)
        assert waits_in in query and worker.proc.poll() is None
        assert_nothing_decided(queued_spot, len(sent))  # the first run left nothing behind
        conn.rollback()
        log = worker.wait_ok()
    assert "decide_batch failed (attempt 1), running it again" in log
    assert "terminating connection due to administrator command" in log
    assert f"claimed {len(sent)} in passes [{len(sent)}]" in log  # one batch, one claim
    assert "stay queued" not in log and "Internal error" not in log
    assert_decided_once(queued_spot, sent)


# -- 3. two workers at once keep each client's order ------------------------------------


@postgresql_only
def test_two_workers_at_once_decide_each_clients_postbacks_in_arrival_order(
    client, queued_spot, tmp_path
):
    stories = [status_story(i) for i in range(6)]
    leads = [new_client(queued_spot, i) for i in range(len(stories))]
    sent = send_all(client, queued_spot, leads, interleaved(stories, seed=3))
    small = {"INCOMING_BATCH": "3"}  # many batches, the two workers' claims interleaved
    specs = [(f"hfault-w{n}", ["drain", "wait"], small) for n in (1, 2)]
    with workers(tmp_path, *specs) as both:
        for worker in both:
            wait_until(lambda w=worker: "ready" in w.log(), 30, f"{worker.name} to start")
        for worker in both:
            worker.go()
        claimed = [int(w.wait_ok().split("claimed ")[1].split()[0]) for w in both]
    assert sum(claimed) == len(sent) and all(claimed), claimed  # both decided some
    assert_decided_once(queued_spot, sent)  # every change "updated", after its deposit
    assert final_conversions(queued_spot) == story_end(leads, stories)


# -- 4. the embedded loop meets a locked SQLite database ---------------------------------


class PauseBeforeDecision:
    """An execute wrapper on the loop thread's connections: at the BEGIN of the
    first decision (the first BEGIN after a claim), the loop waits until the
    test holds SQLite's write lock. Nothing is changed, only the moment chosen."""

    def __init__(self, thread_name):
        self.thread_name = thread_name
        self.claimed = False
        self.at_begin = threading.Event()
        self.go = threading.Event()

    def attach(self, sender, connection, **kwargs):
        if threading.current_thread().name != self.thread_name:
            return
        if self.wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(self.wrapper)

    def wrapper(self, execute, sql, params, many, context):
        if sql.startswith("UPDATE") and 'SET "claim" =' in sql:
            self.claimed = True
        elif self.claimed and sql.startswith("BEGIN") and not self.at_begin.is_set():
            self.at_begin.set()
            assert self.go.wait(10), "the test did not take the lock"
        return execute(sql, params, many, context)


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="SQLite's write lock and busy timeout; PostgreSQL's faults are tested above",
)
def test_the_embedded_loop_decides_a_batch_again_after_a_locked_database(
    client, queued_spot, settings, caplog, monkeypatch
):
    caplog.set_level(logging.WARNING)
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.05
    # The loop's connection (opened by its thread, after this) waits 0.2 s for
    # the write lock, not the project's 20 s.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    sent = backlog(client, queued_spot, [deposits_and_changes(i) for i in range(4)], seed=4)
    pause = PauseBeforeDecision("hfault-loop")
    connection_created.connect(pause.attach, dispatch_uid="hfault-pause")
    stop = threading.Event()
    loop = threading.Thread(
        target=embedded.run_forever, args=(stop,), name=pause.thread_name, daemon=True
    )
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        loop.start()
        assert pause.at_begin.wait(10), "the loop claimed no batch"
        other.execute("BEGIN IMMEDIATE")  # the write lock, held past the loop's timeout
        try:
            pause.go.set()
            wait_until(lambda: retried(caplog), 10, "the decision to fail on the lock")
            assert_nothing_decided(queued_spot, len(sent))
        finally:
            other.execute("ROLLBACK")
        wait_until(
            lambda: not IncomingPostback.objects.filter(status=IncomingPostback.QUEUED).exists(),
            10,
            "the batch to be decided",
        )
    finally:
        pause.go.set()
        other.close()
        stop.set()
        embedded.wake()
        loop.join(10)
        connection_created.disconnect(dispatch_uid="hfault-pause")
    assert not loop.is_alive()
    first = retried(caplog)[0].getMessage()
    assert "decide_batch failed (attempt 1)" in first and "database is locked" in first
    assert not [r for r in caplog.records if "stay queued" in r.getMessage()]
    assert_decided_once(queued_spot, sent)


def retried(caplog):
    return [r for r in caplog.records if r.name == "tracker.retry"]

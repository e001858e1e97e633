"""A send that happened is recorded, even when the database connection is lost
or locked while a batch's outcomes are written.

The loop keeps a batch's outcomes until their write commits and runs the
write again on a new connection within the claim's lease: no request goes
without its attempt row, no delivery stays *sending*, and so no delivery is
sent again when its claim lapses.
"""

import logging
import sqlite3
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection

from crm.models import Client
from postbacks.delivery import attempts, batch
from postbacks.delivery.fanout import accept
from postbacks.loops import embedded
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback

pytestmark = pytest.mark.usefixtures("outgoing")

N = 6  # deliveries, all claimed and sent at once
SLOW = 1.0  # seconds each request takes: the lock is taken while they are in flight
BUSY = (Delivery.PENDING, Delivery.SENDING)


def deliveries_to(receiver, spot, n=N):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb?c={click_id}")
    receiver.slow_paths["/pb"] = SLOW
    leads = [Client.objects.create(spot=spot, advert_pixel="px") for _ in range(n)]
    for lead in leads:
        accept(lead, "reg")
    assert Delivery.objects.count() == n
    return leads


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def all_in_flight(receiver):
    """All deliveries claimed and their requests at the receiver, none answered yet."""
    sending = Delivery.objects.filter(status=Delivery.SENDING).count()
    return sending == N and len(receiver.requests) == N


def assert_each_sent_once_and_recorded(receiver, leads, n=N):
    sent = Counter(parse_qs(urlsplit(r.path).query)["c"][0] for r in receiver.requests)
    assert sent == Counter({lead.click_id: 1 for lead in leads})
    assert not Delivery.objects.filter(status__in=BUSY).exists()
    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.SUCCESS, 1)}
    # One attempt row per request made, numbered 1.
    assert DeliveryAttempt.objects.filter(number=1, success=True).count() == n
    assert DeliveryAttempt.objects.count() == len(receiver.requests)


def retried_warnings(caplog):
    return [r for r in caplog.records if r.name == "tracker.retry"]


def locker_connection():
    """A connection of its own to the test database, to lock a table with."""
    import psycopg

    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
        host=s["HOST"] or None, port=s["PORT"] or None, autocommit=False,
    )  # fmt: skip


def terminate_the_attempts_write(locker, caplog, ready):
    """Once `ready`, lock the attempts table; terminate the backend that waits
    on it to write attempts, wait until that write is run again, then release."""
    table = DeliveryAttempt._meta.db_table
    wait_until(ready, 10, "the sends to be in flight")
    locker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')

    def waiting():
        """The backend waiting on the lock to write the attempts."""
        # pg_stat_activity is read once per transaction unless told otherwise.
        locker.execute("SELECT pg_stat_clear_snapshot()")
        return locker.execute(
            "SELECT a.pid, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.relation = %s::regclass AND NOT l.granted",
            [table],
        ).fetchall()

    wait_until(waiting, 10, "the outcome write to wait on the lock")
    [(pid, query)] = waiting()
    # The attempts' write (a batch's rows go in by COPY on PostgreSQL).
    assert (
        query.lstrip()
        .upper()
        .startswith((f'INSERT INTO "{table.upper()}"', f'COPY "{table.upper()}"'))
    )
    locker.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The write is run again on a new connection and waits on the lock anew.
    wait_until(lambda: retried_warnings(caplog), 10, "the write to be run again")
    time.sleep(0.3)
    locker.rollback()  # the lock is released


def send_due_while_the_attempts_write_is_terminated(caplog, ready):
    """send_due in a thread, its attempts' write terminated once `ready`
    (terminate_the_attempts_write); it ends, and without an error."""
    failed = []

    def loop():
        try:
            batch.send_due()
        except Exception as e:  # the test's assertions tell what it cost
            failed.append(e)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    locker = locker_connection()
    try:
        terminate_the_attempts_write(locker, caplog, ready)
        thread.join(30)
    finally:
        locker.close()
    assert not thread.is_alive()
    assert failed == []


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="pg_terminate_backend and LOCK TABLE are PostgreSQL's; the SQLite test below "
    "meets a locked database instead",
)
@pytest.mark.django_db(transaction=True)
def test_a_terminated_connection_while_outcomes_are_written_loses_nothing(
    spot, receiver, settings, caplog
):
    caplog.set_level(logging.WARNING)
    leads = deliveries_to(receiver, spot)
    send_due_while_the_attempts_write_is_terminated(caplog, lambda: all_in_flight(receiver))
    assert_each_sent_once_and_recorded(receiver, leads)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the recorder writes behind the loop on PostgreSQL only (batch.py, 7.)",
)
@pytest.mark.django_db(transaction=True)
def test_outcomes_written_behind_a_backlog_survive_a_terminated_connection(
    spot, receiver, settings, caplog
):
    caplog.set_level(logging.WARNING)
    settings.POSTBACKS_SENDER_THREADS = 1  # two claimed a step: a backlog of three steps
    leads = deliveries_to(receiver, spot)
    receiver.slow_paths["/pb"] = 0.1
    # The first two sent: the next step hands their outcomes to the recorder.
    send_due_while_the_attempts_write_is_terminated(caplog, lambda: len(receiver.requests) >= 2)
    # The write that was run again was the recorder's, on its own thread.
    assert retried_warnings(caplog)[0].threadName.startswith("postback-record")
    assert_each_sent_once_and_recorded(receiver, leads)


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="SQLite's busy timeout; PostgreSQL's lost connection is tested above",
)
@pytest.mark.django_db(transaction=True)
def test_the_embedded_loop_writes_outcomes_again_after_a_locked_database(
    spot, receiver, settings, caplog, monkeypatch
):
    caplog.set_level(logging.WARNING)
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.05
    # The loop's connection (opened by its thread, after this) waits 0.2 s for
    # a lock, not the project's 20 s: the write below meets a locked database.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    leads = deliveries_to(receiver, spot)
    stop = threading.Event()
    thread = threading.Thread(target=embedded.run_forever, args=(stop,), daemon=True)
    thread.start()
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        wait_until(lambda: all_in_flight(receiver), 10, "the batch to be in flight")
        other.execute("BEGIN IMMEDIATE")  # the write lock, held past the loop's timeout
        try:
            wait_until(lambda: retried_warnings(caplog), SLOW + 5, "the write to fail on the lock")
        finally:
            other.execute("ROLLBACK")
        wait_until(
            lambda: not Delivery.objects.filter(status__in=BUSY).exists(),
            10,
            "the outcomes to be written",
        )
        time.sleep(0.2)  # nothing else goes out
    finally:
        other.close()
        stop.set()
        embedded.wake()
        thread.join(10)
    assert "database is locked" in retried_warnings(caplog)[0].getMessage()
    assert_each_sent_once_and_recorded(receiver, leads)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's busy timeout")
@pytest.mark.django_db(transaction=True)
def test_a_single_delivery_writes_its_outcome_again_after_a_locked_database(
    spot, receiver, caplog, monkeypatch
):
    # What a job does where no loop runs: one delivery, sent and then recorded.
    caplog.set_level(logging.WARNING)
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    leads = deliveries_to(receiver, spot, n=1)
    delivery = Delivery.objects.get()
    answers = []

    def job():
        try:
            answers.append(attempts.deliver(delivery.pk))
        except Exception as e:  # the test's assertions tell what it cost
            answers.append(e)
        finally:
            connection.close()

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        wait_until(lambda: receiver.requests, 10, "the request")
        other.execute("BEGIN IMMEDIATE")
        try:
            wait_until(lambda: retried_warnings(caplog), SLOW + 5, "the write to fail on the lock")
        finally:
            other.execute("ROLLBACK")
        thread.join(10)
    finally:
        other.close()
    assert answers == [Delivery.SUCCESS]
    assert_each_sent_once_and_recorded(receiver, leads, n=1)

"""`quickstart --demo` on a port of its own: the demo's postback follows the
address it serves on and arrives within seconds.

A real `manage.py quickstart` process on the embedded default (its own SQLite
file, no Redis), as a new user runs it; the test reads that file.
"""

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracker.management.commands.quickstart import local_address

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("addrport", "address"),
    [
        ("8101", "127.0.0.1:8101"),
        ("0.0.0.0:8101", "127.0.0.1:8101"),
        ("[::]:8101", "[::1]:8101"),
        ("[::1]:8101", "[::1]:8101"),
        ("192.0.2.7:8101", "192.0.2.7:8101"),
    ],
)
def test_the_demo_receiver_address_follows_runserver_addrport(addrport, address):
    assert local_address(addrport) == address


def delivered(db_file, url_part):
    with contextlib.closing(sqlite3.connect(db_file, timeout=5)) as db:
        rows = db.execute(
            "SELECT count(*) FROM postbacks_delivery d "
            "JOIN postbacks_outgoingpostback p ON p.id = d.postback_id "
            "WHERE d.status = 'success' AND p.url LIKE ?",
            (f"%{url_part}%",),
        )
        return rows.fetchone()[0]


@contextlib.contextmanager
def quickstart_demo(tmp_path, port):
    """A `manage.py quickstart --demo` process on `port`; yields its SQLite file
    and a function that reads its output so far."""
    db_file = tmp_path / "demo.sqlite3"
    unset = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{db_file}")
    log_path = tmp_path / "quickstart.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "quickstart",
                "--demo",
                "--addrport",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        yield db_file, lambda: log_path.read_text(errors="replace")[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def poll(read, deadline):
    """read() once it is truthy (a database still being migrated reads as nothing)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):
            if value := read():
                return value
        time.sleep(0.5)
    return None


def test_quickstart_demo_on_another_port_delivers_its_postback(tmp_path):
    port = free_port()
    with quickstart_demo(tmp_path, port) as (db_file, output):
        count = poll(
            lambda: delivered(db_file, f"127.0.0.1:{port}/demo/receiver"), time.monotonic() + 60
        )
        assert count, f"no demo postback delivered to port {port}: {output()}"


def receiver_deliveries(db_file):
    """(status, attempts, failed attempts) of each delivery to the demo's own receiver."""
    with contextlib.closing(sqlite3.connect(db_file, timeout=5)) as db:
        return db.execute(
            "SELECT d.status, "
            "(SELECT count(*) FROM postbacks_deliveryattempt a WHERE a.delivery_id = d.id), "
            "(SELECT count(*) FROM postbacks_deliveryattempt a "
            " WHERE a.delivery_id = d.id AND NOT a.success) "
            "FROM postbacks_delivery d "
            "JOIN postbacks_outgoingpostback p ON p.id = d.postback_id "
            "WHERE p.url LIKE '%/demo/receiver%'"
        ).fetchall()


def test_the_demo_postbacks_reach_their_receiver_on_the_first_attempt(tmp_path):
    # The delivery loop runs in the server's process and the demo's receiver
    # is that server: what the loop sends before the server listens is
    # refused, and waits for its retry a minute later.
    with quickstart_demo(tmp_path, free_port()) as (db_file, output):
        rows = poll(
            lambda: (
                (rows := receiver_deliveries(db_file))
                and all(status == "success" for status, _, _ in rows)
                and rows
            ),
            time.monotonic() + 30,
        )
        assert rows, f"the demo postbacks were not all delivered within 30 s: {output()}"
    assert all((attempts, failed) == (1, 0) for _, attempts, failed in rows), rows

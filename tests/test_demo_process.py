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


def test_quickstart_demo_on_another_port_delivers_its_postback(tmp_path):
    port = free_port()
    db_file = tmp_path / "demo.sqlite3"
    unset = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{db_file}")
    log = (tmp_path / "quickstart.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "quickstart", "--demo", "--addrport", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(sqlite3.OperationalError):  # not migrated yet
                count = delivered(db_file, f"127.0.0.1:{port}/demo/receiver")
            if count:
                break
            time.sleep(0.5)
        output = (tmp_path / "quickstart.log").read_text(errors="replace")
        assert count, f"no demo postback delivered to port {port}: {output[-3000:]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)

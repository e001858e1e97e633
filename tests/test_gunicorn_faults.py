"""A real gunicorn, as the README runs it, on its own SQLite file (so it runs
on both passes): malformed input it hands the app, and what it logs."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "REDIS_URL": "",
        "SECRET_KEY": "test-gunicorn",
        "DEBUG": "false",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    make_spot = (
        "from tracker.models import Spot; print(Spot.objects.create(name='S').postback_token)"
    )
    shell = subprocess.run(
        [*manage, "shell", "-c", make_spot], cwd=ROOT, env=env, check=True, capture_output=True
    )
    token = shell.stdout.decode().split()[-1]  # after the shell's own greeting
    log = open(folder / "gunicorn.log", "w+b")  # noqa: SIM115  (read by the tests)
    proc = subprocess.Popen(
        [str(GUNICORN), "tracker.wsgi"], cwd=ROOT, env=env, stderr=log, start_new_session=True
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"port": port, "token": token, "db": folder / "db.sqlite3", "log": log}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)
    log.close()


def raw(server, data):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), body


def stored(server):
    with sqlite3.connect(server["db"]) as db:
        return db.execute(
            "SELECT status, body, warnings FROM postbacks_incomingpostback ORDER BY id"
        ).fetchall()


def test_a_malformed_chunked_body_is_stored_and_answered_with_json_not_a_500(server):
    before = len(stored(server))
    path = f"/api/postbacks/{server['token']}/tracker-postback?clickid=nobody&goal=reg"
    status, head, body = raw(
        server,
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\nabc\r\n0\r\n\r\n".encode(),
    )
    assert status == 202 and "application/json" in head  # processed from its query
    assert json.loads(body)["status"] == "unmatched"
    rows = stored(server)
    assert len(rows) == before + 1
    assert "the body could not be read (InvalidChunkSize" in rows[-1][2]


def test_a_refused_request_line_is_logged_with_the_token_masked(server):
    token = server["token"]
    line = f"GET /api/postbacks/{token}/tracker-postback?tid=".encode() + "тест".encode()
    status, _, _ = raw(server, line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 400  # gunicorn refuses raw non-ASCII bytes in a URL
    time.sleep(0.2)
    server["log"].seek(0)
    log = server["log"].read().decode("utf-8", "replace")
    assert "Invalid request" in log and f"/api/postbacks/{token[:4]}…" in log
    assert token not in log

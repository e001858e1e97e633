"""A database that cannot be reached: the API and /healthz answer 503 JSON in
seconds, and 200 again once it is back.

The server is a real gunicorn process. In the PostgreSQL pass it reaches the
test database through a TCP proxy in this process, which the tests cut (the
listener closed, every connection dropped) and restore; the shared
PostgreSQL itself is never touched.
"""

import os
import selectors
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.db import DatabaseError, connection, transaction

from crm.models import Client
from tests.test_outgoing_redis import free_port
from tracker.unavailable import unreachable

ROOT = Path(__file__).resolve().parent.parent
# The API answers within the pool's wait (3 s) and a little: well under this.
FAST = 6.0


class CutProxy:
    """A TCP proxy to `upstream` that can be cut and restored, on a fixed port."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.port = free_port()
        self.want_up = True
        self.changed = threading.Event()
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.wait_for_change()

    def cut(self):
        self.changed.clear()  # before asking: the proxy's thread may answer at once
        self.want_up = False
        self.wait_for_change()

    def restore(self):
        self.changed.clear()
        self.want_up = True
        self.wait_for_change()

    def close(self):
        self.stopped = True
        self.thread.join(5)

    def wait_for_change(self):
        assert self.changed.wait(5), "the proxy did not change state"

    def run(self):
        sel = selectors.DefaultSelector()
        listener, peers, up = None, {}, None
        while not self.stopped:
            if self.want_up != up:
                up = self.want_up
                if up:
                    listener = socket.create_server(("127.0.0.1", self.port))
                    sel.register(listener, selectors.EVENT_READ)
                else:
                    for sock in [listener, *peers]:
                        sel.unregister(sock)
                        sock.close()
                    listener, peers = None, {}
                self.changed.set()
            for key, _ in sel.select(0.05):
                sock = key.fileobj
                if sock is listener:
                    near, _ = listener.accept()
                    far = socket.create_connection(self.upstream, timeout=5)
                    peers[near], peers[far] = far, near
                    sel.register(near, selectors.EVENT_READ)
                    sel.register(far, selectors.EVENT_READ)
                    continue
                if sock not in peers:  # closed along with its peer in this round
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        peers[sock].sendall(data)
                        continue
                except OSError:
                    pass
                for end in (sock, peers[sock]):
                    sel.unregister(end)
                    end.close()
                    peers.pop(end)
        for sock in [listener, *peers]:
            if sock is not None:
                sock.close()


class Server:
    """A gunicorn process of the project with the given environment."""

    def __init__(self, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "tracker.wsgi", "--workers", "1"]
            + ["--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env={**os.environ, "SECRET_KEY": "test-database-down", "DEBUG": "false", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/healthz", timeout=10)
                return
            except requests.ConnectionError:
                assert self.proc.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def timed(self, method, path, **kwargs):
        started = time.monotonic()
        answer = requests.request(method, self.url + path, timeout=15, **kwargs)
        return answer, time.monotonic() - started


def assert_unavailable(answer, took):
    assert answer.status_code == 503, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["ok"] is False
    assert answer.json()["error"]
    assert int(answer.headers["Retry-After"]) > 0
    assert took < FAST


@pytest.fixture
def shared_db(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the server process needs a database it can open: PostgreSQL pass only")


@pytest.fixture
def proxy(shared_db):
    db = connection.settings_dict
    proxy = CutProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    yield proxy
    proxy.close()


@pytest.fixture
def server(proxy):
    db = connection.settings_dict
    server = Server(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{proxy.port}/{db['NAME']}"
    )
    yield server
    server.stop()


def test_the_api_answers_503_json_while_the_database_is_down_and_200_when_it_is_back(
    spot, proxy, server
):
    lead = Client.objects.create(spot=spot, name="Ann")
    incoming = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    bot = {"headers": {"X-Api-Key": spot.api_key}, "json": {"user_id": 7}}
    assert server.timed("GET", "/healthz")[0].status_code == 200
    assert server.timed("POST", "/api/clients", **bot)[0].status_code == 201

    proxy.cut()
    answer, took = server.timed("GET", "/healthz")
    assert_unavailable(answer, took)
    assert answer.json()["database"].startswith("down: ")
    assert answer.json()["error"] == "database is down"
    answer, took = server.timed("GET", incoming, params={"clickid": lead.click_id, "goal": "reg"})
    assert_unavailable(answer, took)
    assert "database is unavailable" in answer.json()["error"]
    assert_unavailable(*server.timed("POST", "/api/clients", **bot))

    proxy.restore()
    deadline = time.monotonic() + 20
    while server.timed("GET", "/healthz")[0].status_code != 200:
        assert time.monotonic() < deadline, "still down 20 s after the database came back"
        time.sleep(0.2)
    answer = server.timed("GET", incoming, params={"clickid": lead.click_id, "goal": "reg"})[0]
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    assert server.timed("POST", "/api/clients", **bot)[0].status_code == 200


def test_a_database_file_that_cannot_be_opened_gives_503_json(tmp_path):
    # The embedded default with its SQLite file in a folder that does not exist.
    server = Server(DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}", REDIS_URL="")
    try:
        assert_unavailable(*server.timed("GET", "/healthz"))
        assert_unavailable(*server.timed("GET", "/api/postbacks/0000/tracker-postback"))
        bot = {"headers": {"X-Api-Key": "k"}, "json": {"user_id": 7}}
        assert_unavailable(*server.timed("POST", "/api/clients", **bot))
        assert_unavailable(*server.timed("GET", "/go/some-spot?advert__campaign_id=1"))
    finally:
        server.stop()


def test_a_database_that_never_answers_gives_503_json_within_the_connect_timeout():
    # A listener that accepts (the kernel does, up to its backlog) and never answers.
    with socket.create_server(("127.0.0.1", 0)) as hung:
        server = Server(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{hung.getsockname()[1]}/hung",
            DATABASE_POOL="false",
            REDIS_URL="",
        )
        try:
            answer, took = server.timed("GET", "/api/postbacks/0000/tracker-postback")
            assert_unavailable(answer, took)
            assert took >= 2  # libpq's connect timeout, not an immediate refusal
        finally:
            server.stop()


def test_a_query_on_a_missing_table_is_a_bug_not_an_outage(db):
    with pytest.raises(DatabaseError) as error, transaction.atomic():
        connection.cursor().execute("SELECT * FROM no_such_table")
    assert not unreachable(error.value)


def test_a_sqlite_file_that_cannot_be_opened_is_an_outage(tmp_path):
    with pytest.raises(sqlite3.OperationalError) as error:
        sqlite3.connect(tmp_path / "missing" / "db.sqlite3").execute("SELECT 1")
    assert unreachable(error.value)

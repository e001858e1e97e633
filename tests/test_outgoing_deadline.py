"""One attempt has one deadline: a receiver that trickles cannot hold a send.

Time bounds are generous (a busy machine): the deadline is checked with a
margin of 1.5 s, never tightly.
"""

import contextlib
import os
import socket
import threading
import time

import pytest

from postbacks.delivery import sender
from postbacks.delivery.attempts import deliver
from postbacks.delivery.fanout import accept
from postbacks.delivery.render import Request
from postbacks.models import Delivery, OutgoingPostback

pytestmark = pytest.mark.usefixtures("outgoing")

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"


class Trickler:
    """A receiver on 127.0.0.1 that reads a request, sends `head` at once, then
    `trickle` one byte every `every` seconds until the client goes away. The
    first `answered` requests get a whole answer instead, on a kept-alive
    connection."""

    def __init__(self, head, trickle, every=0.5, answered=0):
        self.head, self.trickle, self.every = head, trickle, every
        self.answered = answered
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = self.connections = 0
        self.closed = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed at the end of the test
            self.connections += 1
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            while True:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(4096)
                    if not data:
                        return
                    request += data
                self.requests += 1
                if self.requests > self.answered:
                    break
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            try:
                conn.sendall(self.head)
                for byte in self.trickle:
                    if self.closed.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the sender cut the connection


@pytest.fixture
def body_trickler():
    server = Trickler(HEAD, b"x" * 1000)
    yield server
    server.closed.set()
    server.sock.close()


@pytest.fixture
def header_trickler():
    server = Trickler(b"", HEAD + b"x" * 1000)
    yield server
    server.closed.set()
    server.sock.close()


def timed_send(url, timeout):
    started = time.monotonic()
    result = sender.send(Request("GET", url), timeout=timeout)
    return result, time.monotonic() - started


def assert_cut_by_the_deadline(result, elapsed, timeout):
    assert result.error_class == "Timeout" and result.status is None
    assert f"deadline of {timeout:g} s was reached" in result.error
    assert timeout <= elapsed < timeout + 1.5


def test_a_body_trickled_byte_by_byte_is_cut_at_the_deadline(body_trickler):
    result, elapsed = timed_send(body_trickler.url + "/pb", timeout=1.5)
    assert_cut_by_the_deadline(result, elapsed, 1.5)
    assert body_trickler.requests == 1


def test_headers_trickled_byte_by_byte_are_cut_at_the_deadline(header_trickler):
    result, elapsed = timed_send(header_trickler.url + "/pb", timeout=1.5)
    assert_cut_by_the_deadline(result, elapsed, 1.5)
    assert header_trickler.requests == 1


def test_a_kept_alive_connection_is_cut_at_the_deadline_of_a_later_send():
    server = Trickler(HEAD, b"x" * 1000, answered=1)
    try:
        first, _ = timed_send(server.url + "/one", timeout=1.0)
        result, elapsed = timed_send(server.url + "/two", timeout=1.0)
    finally:
        server.closed.set()
        server.sock.close()
    assert first.status == 200 and first.body == "ok"
    assert_cut_by_the_deadline(result, elapsed, 1.0)
    assert server.requests == 2 and server.connections == 1


def sockets_to(port):
    """This process's descriptors of TCP sockets whose far end is `port` (other
    tests' threads open and close sockets of their own meanwhile: not counted)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(1 for link in links if link.startswith("socket:") and link[8:-1] in inodes)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_connection_its_receiver_closes_leaves_no_descriptor_open():
    """What cuts a connection from outside holds a duplicate of its socket,
    which would keep the TCP connection open: it closes with the connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    port = server.getsockname()[1]
    thread.start()
    try:
        result, _ = timed_send(f"http://127.0.0.1:{port}/pb", timeout=3)
        thread.join(5)
        assert result.status == 200 and sockets_to(port) == 0
    finally:
        server.close()


def test_a_cut_delivery_is_logged_and_goes_back_to_pending(spot, lead, body_trickler):
    OutgoingPostback.objects.create(spot=spot, name="p", url=body_trickler.url + "/pb", timeout=1.5)
    _, _, [delivery] = accept(lead, "reg")
    started = time.monotonic()
    assert deliver(delivery.pk) == Delivery.PENDING
    assert time.monotonic() - started < 1.5 + 1.5
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.next_attempt is not None
    attempt = delivery.attempt_log.get()
    assert not attempt.success and attempt.error_class == "Timeout"
    assert "deadline of 1.5 s" in attempt.error and "deadline" in delivery.last_error
    assert body_trickler.requests == 1


def test_a_silent_receiver_still_fails_on_the_read_timeout(receiver):
    receiver.reply(200, "late", delay=1.5)
    result, elapsed = timed_send(receiver.url + "/pb", timeout=0.5)
    assert result.error_class == "ReadTimeout" and elapsed < 0.5 + 1.5


def test_a_finished_send_leaves_its_kept_alive_connection_alone(receiver):
    first, _ = timed_send(receiver.url + "/one", timeout=0.3)
    time.sleep(0.8)  # well past the first send's deadline
    second, _ = timed_send(receiver.url + "/two", timeout=0.3)
    assert first.status == second.status == 200
    one, two = receiver.wait_for(2)
    assert one.client_port == two.client_port


def test_parallel_sends_each_keep_their_own_deadline(body_trickler, receiver):
    receiver.reply(200, "slow but fine", delay=2.0)
    results = {}

    def run(name, url, timeout):
        results[name] = timed_send(url, timeout)

    threads = [
        threading.Thread(target=run, args=("trickled", body_trickler.url + "/pb", 1.0)),
        threading.Thread(target=run, args=("slow", receiver.url + "/pb", 5.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    trickled, elapsed = results["trickled"]
    assert_cut_by_the_deadline(trickled, elapsed, 1.0)
    slow, _ = results["slow"]
    assert slow.status == 200 and slow.body == "slow but fine"


def test_one_watcher_cuts_each_send_at_its_own_deadline_and_no_send_starts_a_thread(
    body_trickler,
):
    results = {}

    def run(name, timeout):
        results[name] = timed_send(body_trickler.url + "/pb", timeout)

    # The long deadline is watched first; the short one, added later, still
    # ends first: the watcher wakes for the earliest, not the oldest.
    sends = [threading.Thread(target=run, args=args) for args in (("long", 4.0), ("short", 1.0))]
    for send in sends:
        send.start()
        time.sleep(0.3)
    watchers = [t for t in threading.enumerate() if t.name.startswith("send-dead")]
    for send in sends:
        send.join(10)
    assert_cut_by_the_deadline(*results["short"], 1.0)
    assert_cut_by_the_deadline(*results["long"], 4.0)
    assert len(watchers) == 1  # for both sends in flight

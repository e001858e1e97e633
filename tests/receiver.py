"""A real HTTP server on 127.0.0.1 that records every request it gets.

Tests queue answers with `receiver.reply(status, body, headers, delay)`; when
none is queued it answers 200 OK. `receiver.slow_paths[path] = seconds` makes
every request to a path wait.
"""

import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float
    client_port: int = 0


def form_fields(body):
    """{name: [values]} of a form body, urlencoded or multipart (as parse_qs gives them)."""
    text = body.decode() if isinstance(body, bytes) else body
    if not text.startswith("--"):
        return parse_qs(text)
    boundary = text.split("\r\n", 1)[0]
    fields = {}
    for part in text.split(boundary)[1:-1]:
        head, _, value = part.partition("\r\n\r\n")
        name = re.search(r'name="([^"]*)"', head).group(1)
        fields.setdefault(name, []).append(value.removesuffix("\r\n"))
    return fields


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    # Seconds every request to a path (without its query) waits: a slow receiver.
    slow_paths: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def reply(self, status=200, body="OK", headers=None, delay=0.0):
        with self.lock:
            self.answers.append((status, body, headers or {}, delay))

    def next_answer(self):
        with self.lock:
            return self.answers.pop(0) if self.answers else (200, "OK", {}, 0.0)

    def record(self, item):
        with self.lock:
            self.requests.append(item)

    def wait_for(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests


def make_handler(receiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            receiver.record(
                Received(
                    self.command,
                    self.path,
                    dict(self.headers),
                    body,
                    time.monotonic(),
                    self.client_address[1],
                )
            )
            status, text, headers, delay = receiver.next_answer()
            delay = max(delay, receiver.slow_paths.get(self.path.split("?")[0], 0))
            if delay:
                time.sleep(delay)
            data = text.encode()
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout test)

        do_GET = do_POST = do_PUT = handle_any

        def log_message(self, *args):
            pass

    return Handler


class Server(ThreadingHTTPServer):
    # A loop sends on up to POSTBACKS_SENDER_THREADS connections at once; the
    # default backlog of 5 would drop some of their connects.
    request_queue_size = 128


@pytest.fixture
def receiver():
    rec = Receiver()
    server = Server(("127.0.0.1", 0), make_handler(rec))
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def outgoing(settings):
    """Settings of the outgoing tests: 127.0.0.1 allowed, retry delays in milliseconds."""
    settings.POSTBACKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.POSTBACKS_DELAY_SCALE = 0.001
    settings.POSTBACKS_CLAIM_SECONDS = 30
    yield settings
    if settings.REDIS_URL and os.environ.get("REDIS_URL") == settings.REDIS_URL:
        # Retries enqueue jobs on the shared test Redis; drop ours.
        from postbacks.loops import queue

        q = queue.get_queue()
        q.empty()
        for job_id in q.scheduled_job_registry.get_job_ids():
            q.scheduled_job_registry.remove(job_id, delete_job=True)


def drain(timeout=5.0):
    """Run the delivery loop's passes until nothing waits: the queued postbacks and
    new clicks decided (as each pass does first), no delivery pending or sending."""
    from postbacks.delivery.batch import send_due
    from postbacks.loops import intake
    from postbacks.models import Delivery

    deadline = time.monotonic() + timeout
    busy = [Delivery.PENDING, Delivery.SENDING]
    while True:
        if time.monotonic() > deadline:
            raise AssertionError("deliveries still pending after the timeout")
        if intake.decide_all():
            continue
        if not Delivery.objects.filter(status__in=busy).exists():
            return
        if not send_due():
            time.sleep(0.005)

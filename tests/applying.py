"""A receiver that applies what it gets in arrival order, as Keitaro and the ad
networks do: a real HTTP server on 127.0.0.1 keeping, per conversion (query
`c`), the last status and sum it accepted.

Import `applying_receiver` into a test module to use the `applying` fixture.
`rule(query, n)` (n: the request's number, from 1) answers each request with
(status, delay seconds, headers); a request is applied when it is answered
2xx, after its delay: a slow answer is a slow apply, so two requests sent
side by side may be applied in either order.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class Applying:
    def __init__(self):
        self.lock = threading.Lock()
        self.rule = lambda query, n: (200, 0.0, {})
        self.arrived = []  # (monotonic time, query) of every request, in arrival order
        self.applied = []  # (monotonic time, query) of the accepted ones, in apply order
        self.url = ""

    def state(self, conversion_id):
        """(status, sum) the receiver holds for a conversion, from the last applied request."""
        mine = [q for _, q in self.applied if q.get("c") == str(conversion_id)]
        return (mine[-1].get("s"), mine[-1].get("sum")) if mine else None

    def handle(self, path):
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query, keep_blank_values=True).items()}
        with self.lock:
            self.arrived.append((time.monotonic(), query))
            n = len(self.arrived)
        status, delay, headers = self.rule(query, n)
        if delay:
            time.sleep(delay)
        if 200 <= status < 300:
            with self.lock:
                self.applied.append((time.monotonic(), query))
        return status, headers


def make_handler(receiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers = receiver.handle(self.path)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_POST = do_GET

        def log_message(self, *args):
            pass

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


@pytest.fixture(name="applying")
def applying_receiver():
    rec = Applying()
    server = Server(("127.0.0.1", 0), make_handler(rec))
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()

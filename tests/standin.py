"""A stand-in for an outside API on 127.0.0.1: answers chosen per path, requests recorded.

Like tests/receiver.py, a real HTTP server; here a test gives each path an
answer (status, body as text or bytes, headers), or a function of the request
that returns one, so paging and zip files can be served.
"""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Asked:
    path: str
    query: dict  # name -> first value
    headers: dict


@dataclass
class StandIn:
    port: int = 0
    routes: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path, status=200, body="", headers=None):
        self.routes[path] = (status, body, headers or {})

    def on(self, path, function):
        """function(Asked) -> (status, body, headers)."""
        self.routes[path] = function


def make_handler(standin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            asked = Asked(parts.path, query, dict(self.headers))
            standin.asked.append(asked)
            route = standin.routes.get(parts.path, (404, '{"message": "no such path"}', {}))
            status, body, headers = route(asked) if callable(route) else route
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def serve():
    """A test module's fixture yields from this: `yield from standin.serve()`."""
    box = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(box))
    server.daemon_threads = True
    box.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()

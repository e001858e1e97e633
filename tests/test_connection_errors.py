"""A failed send says what happened in an operator's words, not urllib3's."""

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from postbacks.delivery import sender
from postbacks.delivery.fanout import accept
from postbacks.delivery.render import Request
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import Receiver, drain, make_handler

pytestmark = pytest.mark.usefixtures("outgoing")


def get(url, timeout=3.0):
    return sender.send(Request("GET", url), timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_names_the_address():
    port = free_port()
    result = get(f"http://127.0.0.1:{port}/pb")
    assert result.error == f"connection refused by 127.0.0.1:{port}"
    assert result.error_class == "ConnectionError"  # kept as it was


def test_an_unknown_host_says_dns():
    result = get("http://example.invalid/pb")
    assert result.error == "DNS: no such host example.invalid"
    assert result.error_class == "ConnectionError"


@pytest.fixture
def full_backlog():
    """A port whose accept queue is full: the kernel drops new SYNs, so a
    connect waits until its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # it completes in the kernel's queue
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for s in [*fillers, server]:
        s.close()


def test_a_connect_timeout_says_how_long_and_where(full_backlog, settings):
    settings.POSTBACKS_CONNECT_TIMEOUT = 0.5
    result = get(f"http://127.0.0.1:{full_backlog}/pb")
    assert result.error == f"timed out after 0.5 s connecting to 127.0.0.1:{full_backlog}"
    assert result.error_class == "ConnectTimeout"


def test_a_silent_receiver_is_a_read_timeout_in_words(receiver):
    receiver.reply(200, "late", delay=1.2)
    result = get(receiver.url + "/pb", timeout=0.4)
    assert result.error == f"no answer from 127.0.0.1:{receiver.port} within 0.4 s (read timeout)"
    assert result.error_class == "ReadTimeout"


@pytest.fixture
def resetting_port():
    """A server that reads the request and resets the connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(10)  # the rest stays unread: closing sends a reset
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_reset_connection_says_so(resetting_port):
    result = get(f"http://127.0.0.1:{resetting_port}/pb")
    assert result.error == f"connection reset by 127.0.0.1:{resetting_port}"


@pytest.fixture
def self_signed(tmp_path):
    """A TLS receiver whose certificate nobody trusts."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out"]
        + [str(cert)],
        check=True,
        capture_output=True,
    )
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rec))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    rec.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_says_tls(self_signed):
    result = get(f"https://127.0.0.1:{self_signed.port}/pb")
    assert result.error.startswith(
        f"TLS: certificate verify failed for 127.0.0.1:{self_signed.port} ("
    )
    assert "Max retries" not in result.error and result.error_class == "SSLError"


def test_tls_to_a_plain_http_receiver_says_tls(receiver):
    result = get(f"https://127.0.0.1:{receiver.port}/pb")
    assert result.error.startswith(f"TLS: handshake with 127.0.0.1:{receiver.port} failed")


def test_the_delivery_log_and_list_read_the_plain_text(spot, lead, settings, admin_client):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    port = free_port()
    OutgoingPostback.objects.create(spot=spot, name="Down", url=f"http://127.0.0.1:{port}/pb")
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    assert d.last_error == f"connection refused by 127.0.0.1:{port}"
    assert d.attempt_log.get().error == d.last_error
    page = admin_client.get("/admin/postbacks/delivery/").content.decode()
    assert f"connection refused by 127.0.0.1:{port}" in page and "Errno" not in page

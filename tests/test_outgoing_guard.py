"""Private targets get no packet: the guard resolves and checks before it connects."""

import shutil
import socket
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest
from urllib3.util.connection import HAS_IPV6

from postbacks.delivery import sender
from postbacks.delivery.attempts import deliver
from postbacks.delivery.fanout import accept
from postbacks.delivery.render import Request
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import Receiver, make_handler

pytestmark = pytest.mark.usefixtures("outgoing")


class Listener:
    """A TCP listener on loopback that never answers and counts handshakes.

    A handshake completes in the kernel and waits in the backlog until it is
    accepted, so draining the backlog counts every connection made so far.
    """

    def __init__(self, host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, 0), family=family)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.count = 0

    def accepted(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.count
            conn.close()
            self.count += 1


@pytest.fixture
def refused(outgoing):
    outgoing.POSTBACKS_ALLOW_PRIVATE_NETWORKS = False
    outgoing.POSTBACKS_ALLOWED_NETWORKS = []
    return outgoing


@pytest.fixture
def listener4():
    listener = Listener("127.0.0.1")
    yield listener
    listener.sock.close()


@pytest.fixture
def listener6():
    if not HAS_IPV6:
        pytest.skip("this machine has no IPv6 loopback")
    listener = Listener("::1")
    yield listener
    listener.sock.close()


def get(url):
    return sender.send(Request("GET", url), timeout=3)


@pytest.mark.parametrize(
    "host", ["127.1", "0x7f000001", "2130706433", "0177.0.0.1", "[::ffff:127.0.0.1]", "localhost"]
)
def test_every_form_of_ipv4_loopback_is_refused_before_a_connection(host, refused, listener4):
    result = get(f"http://{host}:{listener4.port}/pb")
    assert result.error_class == "BlockedAddress" and result.status is None
    assert "127.0.0.1" in result.error
    assert listener4.accepted() == 0


def test_ipv6_loopback_is_refused_before_a_connection(refused, listener6):
    result = get(f"http://[::1]:{listener6.port}/pb")
    assert result.error_class == "BlockedAddress" and "::1" in result.error
    assert listener6.accepted() == 0


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "[fd00::1]", "0.0.0.0"])
def test_internal_targets_are_refused_without_a_connect_attempt(host, refused):
    result = get(f"http://{host}/latest/meta-data/")
    assert result.error_class == "BlockedAddress"
    assert host.strip("[]") in result.error
    # Refused at once: nothing waited for a handshake that would never come.
    assert result.duration_ms < 1000


def test_the_refusal_reads_the_same_with_and_without_a_listener(refused, listener4):
    closed = socket.create_server(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()
    listening = get(f"http://127.0.0.1:{listener4.port}/pb")
    silent = get(f"http://127.0.0.1:{free_port}/pb")
    assert listening.error_class == silent.error_class == "BlockedAddress"
    assert listening.error == silent.error


def test_a_refused_delivery_fails_at_once_after_one_attempt(spot, lead, refused, listener4):
    OutgoingPostback.objects.create(
        spot=spot, name="p", url=f"http://0x7f000001:{listener4.port}/pb?c={{click_id}}"
    )
    _, _, [delivery] = accept(lead, "reg")
    assert deliver(delivery.pk) == Delivery.FAILED
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.next_attempt is None
    attempt = delivery.attempt_log.get()
    assert attempt.error_class == "BlockedAddress" and not attempt.success
    assert delivery.last_error == attempt.error
    assert listener4.accepted() == 0


def test_an_allowed_network_is_sent_to(receiver):
    # The outgoing fixture allows 127.0.0.1/32 only.
    result = get(receiver.url + "/pb")
    assert result.status == 200 and result.error_class == ""
    assert [r.path for r in receiver.wait_for(1)] == ["/pb"]


def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_inside(receiver):
    if not HAS_IPV6:
        pytest.skip("this machine has no IPv6 sockets")
    result = get(f"http://[::ffff:127.0.0.1]:{receiver.port}/mapped")
    assert result.status == 200
    assert [r.path for r in receiver.wait_for(1)] == ["/mapped"]


@pytest.mark.parametrize(
    "addr",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "::7f00:1",  # IPv4-compatible ::127.0.0.1
        "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
    ],
)
def test_ipv6_forms_that_carry_a_private_ipv4_are_refused(addr, settings):
    settings.POSTBACKS_ALLOWED_NETWORKS = []
    assert not sender.address_allowed(addr)
    assert sender.address_allowed("64:ff9b::808:808")  # 8.8.8.8 through NAT64


def test_all_private_networks_may_be_allowed(receiver, settings):
    settings.POSTBACKS_ALLOWED_NETWORKS = []
    settings.POSTBACKS_ALLOW_PRIVATE_NETWORKS = True
    assert get(f"http://localhost:{receiver.port}/pb").status == 200


@pytest.fixture
def tls_receiver(tmp_path):
    """A receiver behind TLS with a self-signed certificate for the name localhost only."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext"]
        + ["subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rec))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    rec.server_names = []
    context.sni_callback = lambda sock, name, ctx: rec.server_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    rec.port = server.server_address[1]
    rec.cert = str(cert)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield rec
    server.shutdown()
    server.server_close()


def test_https_checks_the_certificate_against_the_host_name(tls_receiver, monkeypatch):
    # Trust the test certificate; the check of the name stays on.
    monkeypatch.setattr(sender.session(), "verify", tls_receiver.cert)
    # The socket goes to the checked 127.0.0.1 while TLS speaks to "localhost":
    # the certificate names no address, so only a check against the name passes.
    ok = get(f"https://localhost:{tls_receiver.port}/tls")
    assert ok.status == 200, ok.error
    assert tls_receiver.server_names == ["localhost"]
    assert [r.path for r in tls_receiver.requests] == ["/tls"]
    wrong_name = get(f"https://127.0.0.1:{tls_receiver.port}/tls")
    assert wrong_name.error_class == "SSLError" and "127.0.0.1" in wrong_name.error
    assert len(tls_receiver.requests) == 1


def test_https_without_a_trusted_certificate_is_refused(tls_receiver):
    result = get(f"https://localhost:{tls_receiver.port}/tls")
    assert result.error_class == "SSLError" and "certificate verify failed" in result.error
    assert tls_receiver.requests == []

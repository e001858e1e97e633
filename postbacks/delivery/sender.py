"""Sending one request: connection reuse, timeouts, no redirects, two guarantees.

1. Private targets get no packet. A new connection resolves the host once,
   refuses it when any of its addresses is private, loopback, link-local,
   multicast or reserved (`address_allowed`), and connects only to an address
   it checked, so a name that rebinds between check and use cannot slip
   through. TLS still verifies the certificate against the host name.
2. One attempt has one deadline. Everything a send does (DNS, connect, TLS,
   writing the request, reading the answer) ends `timeout` seconds (plus
   DEADLINE_SLACK) after it starts, however slowly the receiver trickles.
"""

import contextlib
import errno
import heapq
import http.client
import http.cookiejar
import ipaddress
import itertools
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
)

from postbacks.delivery.render import parse_statuses

# The deadline ends this long after the timeout, so a receiver that stays silent
# for a whole `timeout` still fails on the read timeout (ReadTimeout); the
# deadline is for one that keeps every single read short.
DEADLINE_SLACK = 0.25


class BlockedAddress(Exception):
    """The target resolved to a private, loopback or otherwise internal address."""


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def address_allowed(addr):
    ip = ipaddress.ip_address(addr.split("%")[0])
    if ip.version == 6:
        # An IPv6 address that carries an IPv4 one is judged as the IPv4 inside:
        # mapped (::ffff:a.b.c.d), 6to4 (2002:aabb:ccdd::) and NAT64.
        if any(ip in net for net in NAT64):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        else:
            ip = ip.ipv4_mapped or ip.sixtofour or ip
    if settings.POSTBACKS_ALLOW_PRIVATE_NETWORKS:
        return True
    for net in settings.POSTBACKS_ALLOWED_NETWORKS:
        if ip in ipaddress.ip_network(net, strict=False):
            return True
    # is_global is false for private, loopback, link-local, shared (CGNAT) and
    # unspecified ranges; multicast has global ranges, and so has IPv6's ::/8
    # (IPv4-compatible ::a.b.c.d, translated ::ffff:0:a.b.c.d), so both are
    # refused apart, with every other reserved range.
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class Deadline:
    """The end of one send, and the sockets it must cut when it passes.

    Why cut from outside and not socket timeouts: http.client reads a header
    line or a body in loops of recv() that each get the full timeout, and we
    cannot step in between them. Shutting the TCP connection down from outside
    ends any of them at once, whatever urllib3 was doing. One thread per
    process (the watcher) does it for every send in flight.
    """

    def __init__(self, seconds):
        self.at = time.monotonic() + seconds + DEADLINE_SLACK
        self.lock = threading.Lock()
        self.cutters = []
        self.expired = False
        self.stopped = False
        _watcher.add(self)

    def left(self):
        return max(0.0, self.at - time.monotonic())

    def passed(self):
        return time.monotonic() >= self.at

    def watch(self, cutter):
        """Cut this connection (its Cutter) when the deadline passes."""
        with self.lock:
            if self.stopped:
                return
            self.cutters.append(cutter)
            if self.expired:
                cutter.cut()

    def expire(self):  # on the watcher's thread
        with self.lock:
            if not self.stopped:
                self.expired = True
                for cutter in self.cutters:
                    cutter.cut()

    def stop(self):
        with self.lock:
            self.stopped = True
            self.cutters = []
        _watcher.forget(self)


class Cutter:
    """What cuts one connection from outside: a duplicate of its socket's file
    descriptor, made when it connects and closed with it.

    Being ours, the duplicate stays valid when urllib3 closes or TLS-wraps the
    socket, so a cut never hits another connection that got the old number,
    and shutting it down ends the TCP connection under the TLS layer without
    touching the TLS object another thread uses. One per connection, not per
    send: a duplicate made and closed per send cost a tenth of a kept-alive
    send. It must close with its connection, as it holds the TCP connection
    open: GuardedConnectionMixin.close."""

    def __init__(self, sock):
        self.lock = threading.Lock()
        self.handle = socket.fromfd(sock.fileno(), sock.family, sock.type)

    def cut(self):
        with self.lock:
            if self.handle is not None:
                with contextlib.suppress(OSError):  # the other side may have closed it already
                    self.handle.shutdown(socket.SHUT_RDWR)

    def close(self):
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None


class Watcher:
    """The one thread that expires the deadlines of a process as they pass.

    A thread per send cost more than the request it guarded: starting one
    waits for it to run. Stopped deadlines are dropped from the heap lazily,
    all at once when they are most of it, so a stop costs no search."""

    def __init__(self):
        self.cond = threading.Condition()
        self.heap = []  # (at, number, deadline)
        self.numbers = itertools.count()
        self.stopped = 0  # stopped deadlines still in the heap
        self.thread = None

    def add(self, deadline):
        with self.cond:
            if self.thread is None or not self.thread.is_alive():  # first use, or a forked child
                self.thread = threading.Thread(target=self.run, name="send-deadlines", daemon=True)
                self.thread.start()
            heapq.heappush(self.heap, (deadline.at, next(self.numbers), deadline))
            if self.heap[0][2] is deadline:
                self.cond.notify()  # it ends before all the others

    def forget(self, deadline):
        with self.cond:
            if deadline.expired:
                return  # the watcher popped it already
            self.stopped += 1
            if self.stopped > 64 and self.stopped * 2 > len(self.heap):
                self.heap = [e for e in self.heap if not e[2].stopped]
                heapq.heapify(self.heap)
                self.stopped = 0

    def run(self):
        with self.cond:
            while True:
                now = time.monotonic()
                while self.heap and (self.heap[0][2].stopped or self.heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(self.heap)
                    if deadline.stopped:
                        self.stopped -= 1
                    else:
                        deadline.expire()
                self.cond.wait(self.heap[0][0] - now if self.heap else None)


_watcher = Watcher()


def _deadline():
    return getattr(_local, "deadline", None)


def _resolve(host, port, seconds):
    """getaddrinfo cannot be interrupted: it runs in a thread we stop waiting for."""
    answer = []

    def lookup():
        try:
            answer.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except Exception as e:  # handed over to the caller below
            answer.append(e)

    thread = threading.Thread(target=lookup, name="send-dns", daemon=True)
    thread.start()
    thread.join(seconds)
    if not answer:
        raise TimeoutError(f"resolving {host} took longer than {seconds:.2f} s")
    if isinstance(answer[0], Exception):
        raise answer[0]
    return answer[0]


class GuardedConnectionMixin:
    cutter = None  # set once connected

    def _new_conn(self):
        """Resolve once, check every address, connect only to a checked one."""
        deadline = _deadline()
        left = deadline.left() if deadline else None
        host = self._dns_host.strip("[]")
        try:
            addresses = _resolve(host, self.port, left)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out: {e}") from e
        for *_, sockaddr in addresses:
            addr = sockaddr[0]
            if not address_allowed(addr):
                # Nothing was sent, so the text is the same whether anything listens.
                target = addr if addr == host else f"{host} ({addr})"
                raise BlockedAddress(
                    f"Refused to connect to {target}: a private, loopback, link-local, "
                    "multicast or reserved address (set POSTBACKS_ALLOWED_NETWORKS to allow it)."
                )
        error = None
        # Every address of the name was checked above, IPv6 ones too even where
        # this machine cannot reach them (those fail at once and the next is tried).
        for family, kind, proto, _, sockaddr in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                timeout = self.timeout if isinstance(self.timeout, int | float) else None
                if deadline:
                    timeout = deadline.left() if timeout is None else min(timeout, deadline.left())
                sock.settimeout(timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)  # the checked address itself: no second lookup
            except OSError as e:
                sock.close()
                error = e
                continue
            self.cutter = Cutter(sock)
            if deadline:
                deadline.watch(self.cutter)
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            message = f"Connection to {self.host} timed out. (connect timeout={timeout})"
            raise ConnectTimeoutError(self, message) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error

    def close(self):
        super().close()
        cutter, self.cutter = self.cutter, None
        if cutter is not None:
            cutter.close()


class GuardedHTTPConnection(GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(GuardedConnectionMixin, HTTPSConnection):
    pass


class DeadlinePoolMixin:
    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        # A kept-alive connection has its socket already; a new one is watched
        # as soon as _new_conn has connected it.
        deadline = _deadline()
        if deadline and conn.cutter is not None:
            deadline.watch(conn.cutter)
        return conn


class GuardedHTTPPool(DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPPool,
            "https": GuardedHTTPSPool,
        }


_local = threading.local()


_session = None
_session_lock = threading.Lock()


def session():
    """One session per process, shared by the sending threads: urllib3's pools
    are thread-safe, and connections to a receiver are reused between sends
    whichever thread makes them. It keeps no cookies, so one receiver's never
    reach another."""
    global _session
    with _session_lock:
        if _session is None:
            s = requests.Session()
            s.trust_env = False  # a proxy from the environment would hide the real peer
            s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            # A pool per receiver, as many connections as sending threads.
            size = max(20, settings.POSTBACKS_SENDER_THREADS)
            adapter = GuardedAdapter(pool_connections=100, pool_maxsize=size, max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            _session = s
    return _session


@dataclass
class Result:
    status: int | None = None
    headers: str = ""
    body: str = ""
    header_map: dict | None = None
    duration_ms: int = 0
    error_class: str = ""
    error: str = ""
    ok: bool = False


def send(req, timeout, delivery_id=None):
    """Send `req` (a render.Request) and return a Result; never raises for HTTP trouble."""
    headers = dict(req.headers)
    headers.setdefault("User-Agent", settings.POSTBACKS_USER_AGENT)
    if delivery_id is not None:
        headers[settings.POSTBACKS_ID_HEADER] = str(delivery_id)
    req.headers = headers
    started = time.monotonic()
    result = Result()
    deadline = _local.deadline = Deadline(timeout)
    try:
        s = session()
        # Prepared without Session.request's merging of cookies, auth, proxies
        # and hooks, of which the session has none (session() says why): that
        # merging cost about as much CPU as the rest of a send to a fast
        # receiver, and the GIL makes every sending thread pay for it.
        prepared = requests.Request(
            req.method, req.url, data=req.body or None, headers={**s.headers, **headers}
        ).prepare()
        resp = s.send(
            prepared,
            timeout=(min(settings.POSTBACKS_CONNECT_TIMEOUT, timeout), timeout),
            allow_redirects=False,
            stream=True,
            proxies={},
        )
        raw = _read_capped(resp, settings.POSTBACKS_RESPONSE_CAP)
        result.status = resp.status_code
        result.header_map = dict(resp.headers)
        result.headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        result.body = raw.decode(resp.encoding or "utf-8", errors="replace")
    except BlockedAddress as e:
        result.error_class, result.error = "BlockedAddress", str(e)
    except requests.RequestException as e:
        cause = e
        while cause.__context__ is not None and isinstance(cause.__context__, BlockedAddress):
            cause = cause.__context__
        connect_timeout = min(settings.POSTBACKS_CONNECT_TIMEOUT, timeout)
        text = plain_error(cause, req.url, connect_timeout, timeout)
        result.error_class, result.error = type(cause).__name__, text[:2000]
    except (ValueError, UnicodeError, OSError) as e:
        # A URL that cannot even be sent (bad host name, bad port) is a failed
        # attempt like any other, not a crashed worker holding its claim.
        result.error_class, result.error = type(e).__name__, str(e)[:2000]
    finally:
        deadline.stop()
        _local.deadline = None
    # Cut by the deadline, or failed once it had passed (DNS or connect had no
    # time left): what the cut connection raised, or a body cut short, is not the news.
    if deadline.expired or (result.status is None and deadline.passed()):
        result = Result(
            error_class="Timeout",
            error=f"The deadline of {timeout:g} s was reached before the response was complete.",
        )
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def causes(exc):
    """`exc` and every error inside it, outermost first: requests wraps urllib3's
    MaxRetryError (in args), which names its reason, which has its cause."""
    found, todo = [], [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is f for f in found):
            continue
        found.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
    return found


def _where(url):
    """host:port of `url`, with the scheme's port when none is written."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or url, f"{parts.hostname}:{port}"
    except ValueError:
        return url, url


def plain_error(exc, url, connect_timeout, read_timeout):
    """What went wrong with a send, in an operator's words, not urllib3's
    ("Max retries exceeded ... [Errno 111]"); the text of `exc` when it is none
    of the usual troubles."""
    host, where = _where(url)
    found = causes(exc)

    def first(kind):
        return next((e for e in found if isinstance(e, kind)), None)

    if gai := first(socket.gaierror):
        if gai.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
            return f"DNS: no such host {host}"
        return f"DNS: cannot resolve {host} ({gai.strerror or gai})"
    if first(NameResolutionError):
        return f"DNS: cannot resolve {host}"
    if cert := first(ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed for {where} ({cert.verify_message})"
    if tls := first(ssl.SSLError):
        return f"TLS: handshake with {where} failed ({tls.reason or tls})"
    if first(ConnectionRefusedError):
        return f"connection refused by {where}"
    if first(ConnectTimeoutError) or first(requests.ConnectTimeout):
        if any(isinstance(e, TimeoutError) and "resolving" in str(e) for e in found):
            return f"DNS: resolving {host} timed out"
        return f"timed out after {connect_timeout:g} s connecting to {where}"
    if first(requests.ReadTimeout):
        return f"no answer from {where} within {read_timeout:g} s (read timeout)"
    if first(ConnectionResetError):
        return f"connection reset by {where}"
    if first(http.client.RemoteDisconnected) or first(ProtocolError):
        return f"connection closed by {where} without an answer"
    if (os_error := first(OSError)) and os_error.errno in UNREACHABLE:
        return f"{UNREACHABLE[os_error.errno]}: {where}"
    return str(exc)


# Connect errors that name the network's trouble rather than the receiver's.
UNREACHABLE = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


def _read_capped(resp, cap):
    """Up to `cap` bytes of the body. A body read to its end frees the connection
    for the next request; a longer one is cut and its connection dropped."""
    body = b""
    try:
        for chunk in resp.iter_content(8192):
            body += chunk
            if len(body) > cap:
                return body[:cap]
    finally:
        resp.close()
    return body


def _in(status, ranges):
    return any(low <= status <= high for low, high in ranges)


def judge(result, postback=None):
    """Success: a 2xx (or the configured codes) and the configured texts."""
    if result.status is None:
        return False, result.error or "no response"
    success = parse_statuses(postback.success_status) if postback else []
    errors = parse_statuses(postback.error_status) if postback else []
    ok = _in(result.status, success) if success else 200 <= result.status < 300
    if not ok:
        return False, f"HTTP {result.status}"
    if errors and _in(result.status, errors):
        return False, f"HTTP {result.status} is configured as an error"
    if postback and postback.error_text and postback.error_text in result.body:
        return False, f"The response contains the error text {postback.error_text!r}"
    if postback and postback.success_text and postback.success_text not in result.body:
        return False, f"The response lacks the success text {postback.success_text!r}"
    return True, ""

"""Sending one request: connection reuse, timeouts, no redirects, SSRF guard.

The guard checks the address the socket actually connected to, after DNS,
so a name that resolves to a public address when checked and a private one
when used cannot slip through.
"""

import ipaddress
import threading
import time
from dataclasses import dataclass

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from postbacks.render import parse_statuses


class BlockedAddress(Exception):
    """The target resolved to a private, loopback or otherwise internal address."""


def address_allowed(addr):
    ip = ipaddress.ip_address(addr.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if settings.POSTBACKS_ALLOW_PRIVATE_NETWORKS:
        return True
    for net in settings.POSTBACKS_ALLOWED_NETWORKS:
        if ip in ipaddress.ip_network(net, strict=False):
            return True
    # is_global is false for private, loopback, link-local, reserved, shared (CGNAT)
    # and unspecified ranges; multicast has global ranges, so it is refused apart.
    return ip.is_global and not ip.is_multicast


def _check_peer(sock):
    peer = sock.getpeername()[0]
    if not address_allowed(peer):
        sock.close()
        raise BlockedAddress(
            f"Refused to connect to {peer}: a private, loopback, link-local, multicast or "
            "reserved address (set POSTBACKS_ALLOWED_NETWORKS to allow it)."
        )


class GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPPool,
            "https": GuardedHTTPSPool,
        }


_local = threading.local()


def session():
    """One session per thread: connections to a receiver are reused between sends."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False  # a proxy from the environment would hide the real peer
        adapter = GuardedAdapter(pool_connections=20, pool_maxsize=20, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


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
    try:
        resp = session().request(
            req.method,
            req.url,
            data=req.body or None,
            headers=headers,
            timeout=(min(settings.POSTBACKS_CONNECT_TIMEOUT, timeout), timeout),
            allow_redirects=False,
            stream=True,
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
        result.error_class, result.error = type(cause).__name__, str(cause)[:2000]
    except (ValueError, UnicodeError, OSError) as e:
        # A URL that cannot even be sent (bad host name, bad port) is a failed
        # attempt like any other, not a crashed worker holding its claim.
        result.error_class, result.error = type(e).__name__, str(e)[:2000]
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


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

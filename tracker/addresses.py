"""Who is calling: the caller's address behind the proxies PROXY_HOPS counts.

Here, in the lowest layer, because the endpoints (crm, postbacks), the sign-in
lockout and /metrics (tracker) all judge callers by it.
"""

import ipaddress

from django.conf import settings


def client_addr(request):
    """The caller's IP: REMOTE_ADDR, or the entry PROXY_HOPS from the right of
    X-Forwarded-For behind that many proxies; None when it is not an address."""
    addr = request.META.get("REMOTE_ADDR", "")
    hops = getattr(settings, "PROXY_HOPS", 0)
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    forwarded = [a.strip() for a in header.split(",")] if header else []
    if hops and len(forwarded) >= hops:
        # Entries left of the ones our proxies appended are the caller's to forge.
        addr = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None

"""A database that cannot be reached: 503 with a JSON error, not a 500 page
(and in the admin, a short page that says so).

Callers of the API (affiliate networks, bots) and load balancers read status
codes: a 503 with Retry-After says "try again later", which is the truth when
the database is down; a 500 would say we have a bug. Only a failure to reach
the database, or a transaction that kept losing races to others
(tracker/retry.py), is turned into a 503; an error in a query stays a 500.
"""

import logging

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from tracker.retry import conflict, unreachable

log = logging.getLogger(__name__)

# Paths of the public endpoints, whose callers read status codes and JSON
# (clicks too: their errors are JSON already).
JSON_PATHS = ("/api/", "/go/", "/healthz")
# The admin's pages: a person reads these, so they get a page saying what is wrong.
ADMIN_PATHS = ("/admin/",)
# Seconds a caller is asked to wait before it tries again.
RETRY_AFTER = 10


def reason(exc):
    """A short, one-line account of an error: its class and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]


def unavailable_response(error, retry_after=RETRY_AFTER):
    response = JsonResponse({"ok": False, "error": error}, status=503)
    response["Retry-After"] = str(retry_after)
    return response


def unavailable_page(retry_after=RETRY_AFTER):
    """The admin's 503 page. Rendered without the request: its context
    processors (the user, the messages) would read the session, in the
    database that cannot be reached."""
    page = render_to_string("database_down.html", {"retry_after": retry_after})
    response = HttpResponse(page, status=503)
    response["Retry-After"] = str(retry_after)
    return response


class DatabaseUnavailableMiddleware:
    """Answers 503 when a view could not reach the database: JSON on the public
    endpoints, a short page in the admin (whose signed-in pages read the
    session from the database before anything else)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith(ADMIN_PATHS):
            if not unreachable(exception):
                return None
            log.warning("Database unavailable on %s: %s", request.path, reason(exception))
            return unavailable_page()
        if not request.path.startswith(JSON_PATHS):
            return None
        if conflict(exception):
            # A transaction that lost a race every time it was run (tracker/retry.py).
            log.warning("Database contention on %s: %s", request.path, reason(exception))
            return unavailable_response(
                "The database was busy with conflicting changes; nothing was recorded. Try again.",
                retry_after=1,
            )
        if not unreachable(exception):
            return None
        log.warning("Database unavailable on %s: %s", request.path, reason(exception))
        return unavailable_response(
            "The database is unavailable; nothing was recorded. Try again later."
        )

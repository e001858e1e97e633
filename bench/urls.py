"""The project's URLs plus three reference views the bench scripts compare against.

`/bench/ok` is the floor of a request through this stack (middleware, no
query); `/bench/one-query` adds one ORM query, the least a useful view does;
`/bench/one-write` stores one row and commits it, the least a view does that
must not lose what it was sent: it writes the raw row an incoming postback
stores first, and nothing else.
"""

from django.http import HttpResponse
from django.urls import include, path

from bench.common import ONE_WRITE_TOKEN
from postbacks.models import IncomingPostback
from tracker.models import Spot


def ok(request):
    return HttpResponse("ok", content_type="text/plain")


def one_query(request):
    spot = Spot.objects.get(pk=int(request.GET.get("pk", 1)))
    return HttpResponse(spot.name, content_type="text/plain")


def one_write(request):
    # Autocommit: one INSERT, committed by itself.
    row = IncomingPostback.objects.create(token=ONE_WRITE_TOKEN, method="GET", path=request.path)
    return HttpResponse(str(row.pk), content_type="text/plain")


urlpatterns = [
    path("bench/ok", ok),
    path("bench/one-query", one_query),
    path("bench/one-write", one_write),
    path("", include("tracker.urls")),
]

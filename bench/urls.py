"""The project's URLs plus two reference views the bench scripts compare against.

`/bench/ok` is the floor of a request through this stack (middleware, no
query); `/bench/one-query` adds one ORM query, the least a useful view does.
"""

from django.http import HttpResponse
from django.urls import include, path

from tracker.models import Spot


def ok(request):
    return HttpResponse("ok", content_type="text/plain")


def one_query(request):
    spot = Spot.objects.get(pk=int(request.GET.get("pk", 1)))
    return HttpResponse(spot.name, content_type="text/plain")


urlpatterns = [
    path("bench/ok", ok),
    path("bench/one-query", one_query),
    path("", include("tracker.urls")),
]

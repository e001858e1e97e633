"""Prometheus metrics: what the web processes and the workers count, and /metrics.

The counters and histograms live here, in the lowest layer, so that crm
(clicks) and postbacks (postbacks in, deliveries out) count into the same
ones. prometheus_client, not django-prometheus: that one counts every request,
view and query by view name and model, which is a lot of series we would not
read, and it still leaves our own counters, the multiprocess setup and the
protection of /metrics to us.

Several processes. Under gunicorn PROMETHEUS_MULTIPROC_DIR is set
(gunicorn.conf.py makes and empties it, and marks dead workers): every
process writes its values to files there, and a scrape sums the files of all
of them. RQ workers and `manage.py deliver` given the same directory count
into the same sums. Without it (runserver, one process) the values live in
the process.

The backlog is no gauge of the processes: the scrape reads it from the
database, at most every GAUGE_SECONDS (a cached reading), however often
Prometheus asks. postbacks hands in the function that reads it
(`backlog_source`), as tracker imports no app above it.

Labels have bounded values only: a spot's slug (the spots are the team's own
few), the outcome and kind words below. Never a click id or a URL.
"""

import collections
import functools
import hmac
import ipaddress
import logging
import os
import threading
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tracker.addresses import client_addr

log = logging.getLogger(__name__)

# A worker started before gunicorn made the directory: its files need it now.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

CLICKS = Counter("tracker_clicks", "Clicks and bot leads that made a client.", ["spot"])
INCOMING = Counter(
    "tracker_incoming_postbacks",
    "Incoming postbacks decided, by outcome (accepted, updated, duplicate, unmatched, rejected).",
    ["spot", "outcome"],
)
DELIVERIES = Counter(
    "tracker_deliveries",
    "Delivery attempts, by target kind and outcome.",
    ["kind", "outcome"],
)
DURATION = Histogram(
    "tracker_delivery_duration_seconds",
    "How long one delivery attempt took, from sending to the end of the answer.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAG = Histogram(
    "tracker_delivery_lag_seconds",
    "From the event (a conversion, its change, a lead) to its delivery's success.",
    ["kind"],
    # Seconds to a day and a half: the retry schedule's span (postbacks/delivery/attempts.py).
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 16 * 3600, 36 * 3600),
)

# The kinds of target: an outgoing or external postback, or a pixel's network.
KINDS = {"facebook": "facebook", "tiktok": "tiktok", "google": "ga4", "yandex": "yandex"}
TIMEOUTS = {"Timeout", "ReadTimeout", "ConnectTimeout"}


def spot_label(spot):
    """A spot's slug: bounded (the team's own spots) and readable in a dashboard."""
    if spot is None:
        return "unknown"  # a postback to a token no spot has
    return spot.slug or str(spot.pk)


def never_fails(count):
    """Counting must not fail a click, a postback or a delivery (a full disk, a
    directory removed under a worker): logged, and the work goes on."""

    @functools.wraps(count)
    def guarded(*args, **kwargs):
        try:
            count(*args, **kwargs)
        except Exception as e:
            log.warning("Metrics: %s not counted: %s", count.__name__, e)

    return guarded


@never_fails
def click(spot):
    CLICKS.labels(spot=spot_label(spot)).inc()


@never_fails
def incoming(spot, outcome):
    INCOMING.labels(spot=spot_label(spot), outcome=outcome).inc()


def kind_of(delivery):
    pixel = getattr(delivery, "pixel", None) if delivery.pixel_id else None
    return KINDS.get(pixel.network, "pixel") if pixel is not None else "postback"


def outcome_of(result, ok):
    """success, http_4xx, http_5xx, timeout, blocked (a private address, refused
    before any packet) or refused: no answer (connection refused or reset,
    DNS, TLS), or an answer judged a failure that is no HTTP error (a
    redirect, a 2xx without the configured success text)."""
    if ok:
        return "success"
    if result.error_class == "BlockedAddress":
        return "blocked"
    if result.error_class in TIMEOUTS:
        return "timeout"
    status = result.status or 0
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "refused"


@never_fails
def delivered(delivery, result, ok):
    """Count one attempt of `delivery` (its sender.Result, judged `ok`)."""
    delivered_all([(delivery, result, ok)])


@never_fails
def delivered_all(sends):
    """Count the attempts of [(delivery, result, ok)]: a pixel's batch is a
    thousand, so the labelled children and the time are looked up once."""
    now = timezone.now()
    counts = collections.Counter()
    durations, lags = collections.defaultdict(list), collections.defaultdict(list)
    for delivery, result, ok in sends:
        kind = kind_of(delivery)
        counts[kind, outcome_of(result, ok)] += 1
        durations[kind].append((result.duration_ms or 0) / 1000)
        event_time = getattr(delivery, "event_time", None)
        if ok and event_time is not None:
            lags[kind].append(max(0.0, (now - event_time).total_seconds()))
    for (kind, outcome), count in counts.items():
        DELIVERIES.labels(kind=kind, outcome=outcome).inc(count)
    for metric, seconds in ((DURATION, durations), (LAG, lags)):
        for kind, values in seconds.items():
            child = metric.labels(kind=kind)
            for value in values:
                child.observe(value)


# -- the backlog, read from the database ------------------------------------------

# A function returning [(name, help, value)], set by postbacks.apps.
backlog_source = None
GAUGE_SECONDS = 5.0
_reading = {"at": None, "gauges": []}
_reading_lock = threading.Lock()


def backlog_gauges():
    """The backlog's gauges, read at most every GAUGE_SECONDS in this process."""
    if backlog_source is None:
        return []
    with _reading_lock:
        at = _reading["at"]
        if at is None or time.monotonic() - at >= GAUGE_SECONDS:
            try:
                _reading["gauges"] = backlog_source()
            except Exception as e:  # the database away: the counters are still worth a scrape
                log.warning("Metrics: the backlog could not be read: %s", e)
                _reading["gauges"] = []
            _reading["at"] = time.monotonic()
        return _reading["gauges"]


class Backlog(Collector):
    def describe(self):
        return []  # so registering it reads nothing from the database

    def collect(self):
        for name, text, value in backlog_gauges():
            yield GaugeMetricFamily(name, text, value=value)


BACKLOG = Backlog()
REGISTRY.register(BACKLOG)


def multiprocess_dir():
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry():
    """All processes' values (multiprocess mode) or this process's, and the backlog."""
    if not multiprocess_dir():
        return REGISTRY
    found = CollectorRegistry()
    multiprocess.MultiProcessCollector(found)
    found.register(BACKLOG)
    return found


# -- /metrics -----------------------------------------------------------------------


def caller(request):
    """The caller's address as an ip_address, or None."""
    addr = client_addr(request)
    return ipaddress.ip_address(addr) if addr else None


def allowed_networks():
    return [ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_IPS]


def bearer(request):
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def refusal(request):
    """None when the caller may read the metrics, else the response that refuses."""
    token, networks = settings.METRICS_TOKEN, allowed_networks()
    given = bearer(request)
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    addr = caller(request)
    if addr is not None and any(addr in net for net in networks):
        return None
    if token:
        response = JsonResponse(
            {"error": "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>."},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return JsonResponse({"error": "This address may not read the metrics."}, status=403)


@require_GET
def metrics_view(request):
    """GET /metrics: Prometheus's text format, for the token or the allowed addresses."""
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS):
        return JsonResponse({"error": "Metrics are off (set METRICS_TOKEN)."}, status=404)
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)

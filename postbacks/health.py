"""GET /healthz: can this web node take postbacks? For load balancers and monitoring.

Cheap enough to poll every second: one trivial query, one Redis PING when
REDIS_URL is set, two index lookups for the oldest overdue delivery and two
on the queued postbacks' partial index. 200 when the database (and Redis,
when configured) answer and no postback has waited to be decided for over
INCOMING_BACKLOG_MAX_AGE seconds, else 503 naming what is wrong. No login;
nothing secret in the answer.
"""

import datetime

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from postbacks.delivery import order
from postbacks.delivery.attempts import due_q
from postbacks.incoming.batches import backlog
from postbacks.models import Delivery
from tracker.unavailable import RETRY_AFTER, reason

# Seconds the Redis check waits to connect and for the PONG, so a hung Redis
# cannot hang the probe.
REDIS_TIMEOUT = 1.0
# One client per URL, kept between probes so a poll does not open a connection.
_redis_clients = {}


def check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as e:
        return f"down: {reason(e)}"
    return "ok"


def check_redis():
    url = settings.REDIS_URL
    if not url:
        return "not configured"
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        _redis_clients[url] = client
    try:
        client.ping()
    except Exception as e:
        return f"down: {reason(e)}"
    return "ok"


def oldest_overdue_seconds():
    """Age of the oldest delivery due more than the sweep interval ago (0: none).

    A delivery due less than that ago is normal: its job is waiting in the
    queue, or the next sweep takes it. due_q as it is (two statuses, OR-ed)
    makes PostgreSQL sort every overdue row; asked once per status, and with
    next_attempt <= cutoff said again (true of every due row: a claimed one
    was due when it was claimed), each lookup walks the delivery_due index
    (status, next_attempt) and stops at its first row.
    """
    at = timezone.now()
    cutoff = at - datetime.timedelta(seconds=settings.POSTBACKS_SWEEP_INTERVAL)
    oldest = None
    for status in (Delivery.PENDING, Delivery.SENDING):
        due = (
            # One waiting for an earlier event of its conversion (order.py) is not late.
            Delivery.objects.filter(due_q(cutoff), status=status, next_attempt__lte=cutoff)
            .filter(order.ready_q())
            .order_by("next_attempt")
            .values_list("next_attempt", flat=True)
            .first()
        )
        if due is not None and (oldest is None or due < oldest):
            oldest = due
    return int((at - oldest).total_seconds()) if oldest else 0


@never_cache
@require_safe
def healthz(request):
    parts = {"database": check_database(), "redis": check_redis()}
    down = [name for name, state in parts.items() if state.startswith("down")]
    answer = {"ok": not down, **parts, "deliveries": None}
    if "database" not in down:
        age = oldest_overdue_seconds()
        # A late backlog is reported, not a 503: workers that lag are no fault of
        # this web node, and a load balancer that took every node out for it
        # would stop the intake of postbacks too, which loses more than a delay.
        # Monitoring alerts on "late".
        answer["deliveries"] = {
            "oldest_overdue_seconds": age,
            "late": age > settings.POSTBACKS_HEALTH_MAX_LAG,
            "late_after_seconds": settings.POSTBACKS_HEALTH_MAX_LAG,
        }
        queued, waited = backlog()
        # Unlike deliveries, undecided postbacks are a 503: the web answers
        # networks "queued" for events that nothing decides (no worker runs).
        late = waited > settings.INCOMING_BACKLOG_MAX_AGE
        answer["incoming"] = {
            "queued": queued,
            "oldest_queued_seconds": int(waited),
            "late": late,
            "late_after_seconds": settings.INCOMING_BACKLOG_MAX_AGE,
        }
        if late:
            down.append("incoming")
            answer["ok"] = False
    if down:
        answer["error"] = " and ".join(
            f"the incoming queue is late ({answer['incoming']['queued']} postbacks, the oldest "
            f"{answer['incoming']['oldest_queued_seconds']} s)"
            if name == "incoming"
            else f"{name} is down"
            for name in down
        )
        response = JsonResponse(answer, status=503)
        response["Retry-After"] = str(RETRY_AFTER)
        return response
    return JsonResponse(answer)

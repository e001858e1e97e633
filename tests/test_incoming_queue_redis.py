"""The database is the queue: postbacks answered "queued" while the workers'
Redis is down are decided and delivered by a worker's own sweeper, once.

PostgreSQL pass only, as tests/test_outgoing_worker_process.py: the worker
is a real `rqworker` process on the test's database.
"""

import contextlib
import os
import signal
import time
from collections import Counter

import redis

from crm.models import Client
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tests.test_outgoing_redis import own_redis  # noqa: F401  (a fixture)
from tests.test_outgoing_worker_process import post_sale, shared_db, worker  # noqa: F401
from tracker.models import Spot


def test_postbacks_queued_while_redis_is_down_are_decided_and_sent_once(
    shared_db,  # noqa: F811
    live_server,
    receiver,
    own_redis,  # noqa: F811
):
    spot = Spot.objects.create(name="Queued", slug="queued", currency="USD")
    OutgoingPostback.objects.create(
        spot=spot, name="Own tracker", url=f"{receiver.url}/pb?t={{tid}}", all_users=True
    )
    leads = [Client.objects.create(spot=spot) for _ in range(3)]
    proc = worker(own_redis.url, POSTBACKS_SWEEP_INTERVAL="1", POSTBACKS_EMBEDDED_POLL="0.5")
    try:
        workers = redis.Redis.from_url(own_redis.url)
        deadline = time.monotonic() + 30
        while not workers.smembers("rq:workers"):  # up, and through its start with Redis
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not start"
            time.sleep(0.1)
        own_redis.stop()  # no job tells the worker: its loop finds the rows by itself
        for n in range(30):
            assert post_sale(live_server, spot, leads[n % 3], f"t-{n}")["status"] == "queued"
        deadline = time.monotonic() + 60
        while IncomingPostback.objects.filter(status="queued").exists() or (
            Delivery.objects.exclude(status=Delivery.SUCCESS).exists()
            or Delivery.objects.count() < 30
        ):
            assert time.monotonic() < deadline, list(
                IncomingPostback.objects.values_list("status", flat=True)
            )
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
    finally:
        own_redis.start()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert set(IncomingPostback.objects.values_list("status", flat=True)) == {"accepted"}
    sends = Counter(r.path for r in receiver.requests)
    assert len(sends) == 30 and set(sends.values()) == {1}  # each event sent once

"""End to end with real processes: a postback posted to the running server is
delivered by an `rqworker` process; a worker killed mid-send loses nothing.

A worker process must see the test's rows, so this needs a database other
processes can open: it runs in CI's PostgreSQL + Redis pass. (On the embedded
default the web process delivers itself: tests/test_outgoing_embedded.py.)
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests
from django.db import connection

from crm.models import Client
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tests.test_outgoing_redis import own_redis  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def shared_db(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a database they can open: PostgreSQL pass only")


def worker(redis_url, *args, **settings):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT']}"
        f"/{db['NAME']}",
        "DATABASE_POOL": "false",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-worker",
        "POSTBACKS_ALLOWED_NETWORKS": "127.0.0.1/32",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *args, "default"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the work horse dies with it
    )


def post_sale(live_server, spot, client, tid, session=requests):
    url = f"{live_server.url}/api/postbacks/{spot.postback_token}/tracker-postback"
    answer = session.get(
        url,
        params={
            "clickid": client.click_id,
            "tracker.event": "sale",
            "tracker.cost": "12,50",
            "tracker.tid": tid,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_conversion_posted_to_the_server_is_sent_by_a_worker_process(
    shared_db,
    spot,
    live_server,
    receiver,
    own_redis,  # noqa: F811
):
    lead = Client.objects.create(spot=spot, advert_campaign_id="c 1&2")
    OutgoingPostback.objects.create(
        spot=spot,
        name="GET",
        url=f"{receiver.url}/pb?cid={{click_id}}&camp={{advert__campaign_id}}",
    )
    OutgoingPostback.objects.create(
        spot=spot,
        name="JSON",
        url=f'{receiver.url}/json|JSON|{{"sum": "{{sum}}", "tid": "{{tid}}"}}',
    )
    post_sale(live_server, spot, lead, 'tx"1')

    proc = worker(own_redis.url, "--burst")
    assert proc.wait(60) == 0, proc.stderr.read().decode()

    got = {r.path.split("?")[0]: r for r in receiver.wait_for(2)}
    assert got["/pb"].path == f"/pb?cid={lead.click_id}&camp=c%201%262"
    assert got["/json"].method == "POST"
    assert json.loads(got["/json"].body) == {"sum": "12.50", "tid": 'tx"1'}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.SUCCESS}


def test_a_worker_killed_mid_send_loses_no_delivery(
    shared_db,
    spot,
    live_server,
    receiver,
    own_redis,  # noqa: F811
):
    lead = Client.objects.create(spot=spot, advert_campaign_id="c1")
    OutgoingPostback.objects.create(spot=spot, name="Slow", url=f"{receiver.url}/pb?t={{tid}}")
    receiver.reply(200, "OK", delay=30)  # the first request hangs: the worker dies in it
    post_sale(live_server, spot, lead, "t-1")

    # Attempts of at most 2 s, claims of 4 s: the test need not wait long.
    short = {"POSTBACKS_MAX_TIMEOUT": "2", "POSTBACKS_CLAIM_SECONDS": "4"}
    proc = worker(own_redis.url, **short)
    receiver.wait_for(1, timeout=30)
    assert len(receiver.requests) == 1
    os.killpg(proc.pid, signal.SIGKILL)  # the worker and the horse sending for it
    proc.wait(10)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.SENDING

    time.sleep(4.2)  # the dead worker's claim runs out
    again = worker(own_redis.url, "--burst", **short)  # its sweep finds the delivery
    assert again.wait(60) == 0, again.stderr.read().decode()

    delivery.refresh_from_db()
    assert delivery.status == Delivery.SUCCESS
    first, second = receiver.wait_for(2)
    assert first.headers["X-Delivery-Id"] == second.headers["X-Delivery-Id"] == str(delivery.id)


def test_redis_restarted_empty_during_a_burst_loses_no_delivery_and_sends_none_twice(
    shared_db,
    spot,
    live_server,
    receiver,
    own_redis,  # noqa: F811
):
    """Nobody sweeps by hand and no worker restarts: the worker's own sweeper
    sends what Redis forgot, first attempts and delayed retries alike."""
    OutgoingPostback.objects.create(
        spot=spot, name="Own tracker", url=f"{receiver.url}/pb?t={{tid}}"
    )
    leads = [Client.objects.create(spot=spot, advert_campaign_id="c1") for _ in range(3)]
    for _ in range(5):
        receiver.reply(500, "busy")  # five first attempts fail: their retries are in RQ only
    proc = worker(
        own_redis.url,
        "--with-scheduler",
        POSTBACKS_SWEEP_INTERVAL="2",
        POSTBACKS_DELAY_SCALE="0.05",  # the first retry comes about 3 s later
    )
    try:
        session = requests.Session()
        tids = [f"t-{n}" for n in range(60)]
        for n, tid in enumerate(tids):
            if n == 20:
                own_redis.stop()  # jobs queued and retries scheduled are gone with it
            if n == 40:
                own_redis.start()  # empty
            post_sale(live_server, spot, leads[n % 3], tid, session)
        deadline = time.monotonic() + 60
        while Delivery.objects.exclude(status=Delivery.SUCCESS).exists():
            assert time.monotonic() < deadline, list(
                Delivery.objects.exclude(status=Delivery.SUCCESS).values("status", "attempts")
            )
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
        assert proc.poll() is None, "the worker must live through the Redis restart"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert Delivery.objects.count() == 60
    sends = Counter(r.headers["X-Delivery-Id"] for r in receiver.requests)
    # Each delivery sent once, the five that failed first once more: never twice by us.
    assert len(sends) == 60 and sorted(sends.values()) == [1] * 55 + [2] * 5
    assert DeliveryAttempt.objects.filter(success=True).count() == 60


def test_a_worker_stopped_while_its_sweeper_sends_finishes_the_attempt_first(
    shared_db,
    spot,
    live_server,
    receiver,
    own_redis,  # noqa: F811
):
    lead = Client.objects.create(spot=spot, advert_campaign_id="c1")
    OutgoingPostback.objects.create(spot=spot, name="Slow", url=f"{receiver.url}/pb?t={{tid}}")
    receiver.reply(200, "OK", delay=2)
    post_sale(live_server, spot, lead, "t-1")
    redis.Redis.from_url(own_redis.url).flushall()  # no job: only the sweeper can send it

    proc = worker(own_redis.url)
    receiver.wait_for(1, timeout=30)
    os.killpg(proc.pid, signal.SIGTERM)  # a warm shutdown, as systemd or Docker asks
    assert proc.wait(30) == 0, proc.stderr.read().decode()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.SUCCESS and delivery.attempts == 1
    assert len(receiver.requests) == 1

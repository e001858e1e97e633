"""Through RQ: a Redis outage or a lost job delays a postback, never loses it.

These tests start their own redis-server on a free port, so they can stop it.
"""

import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone
from rq import SimpleWorker

from postbacks import queue
from postbacks.fanout import accept
from postbacks.models import Delivery, OutgoingPostback

pytestmark = pytest.mark.usefixtures("outgoing")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(settings):
    server = OwnRedis()
    server.start()
    settings.REDIS_URL = server.url
    settings.RQ_QUEUES = {"default": {"URL": server.url, "DEFAULT_TIMEOUT": 60}}
    yield server
    server.stop()


def work(q):
    """A real RQ worker, in this process so it shares the test's database."""
    SimpleWorker([q], connection=q.connection).work(burst=True)


def test_a_postback_accepted_while_redis_is_down_is_sent_after_the_sweep(
    spot, lead, receiver, own_redis, django_capture_on_commit_callbacks
):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb?c={cl_id}")
    own_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        accept(lead, "reg")  # enqueueing fails: logged, the row stays pending
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING
    own_redis.start()
    q = queue.get_queue()
    assert q.count == 0
    call_command("sweep_deliveries")
    assert q.count == 1
    work(q)
    assert [r.path for r in receiver.wait_for(1)] == ["/pb?c=trk-1"]
    delivery.refresh_from_db()
    assert delivery.status == Delivery.SUCCESS


def test_a_delivery_is_enqueued_after_commit_and_sent_by_a_worker(
    spot, lead, receiver, own_redis, django_capture_on_commit_callbacks
):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        accept(lead, "reg")
    q = queue.get_queue()
    assert q.count == 0  # nothing in Redis before the transaction commits
    for callback in callbacks:
        callback()
    assert q.count == 1
    work(q)
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get().status == Delivery.SUCCESS


def test_a_retry_is_scheduled_in_rq_at_its_next_attempt(spot, lead, receiver, own_redis):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    receiver.reply(500)
    _, _, [d] = accept(lead, "reg")
    q = queue.get_queue()
    q.enqueue("postbacks.jobs.deliver", str(d.pk))
    work(q)
    d.refresh_from_db()
    assert d.status == Delivery.PENDING and d.attempts == 1
    [job_id] = q.scheduled_job_registry.get_job_ids()
    scheduled = q.scheduled_job_registry.get_scheduled_time(job_id)
    assert abs((scheduled - d.next_attempt).total_seconds()) < 1


def test_the_sweep_job_schedules_its_next_run_once(own_redis):
    assert queue.ensure_sweep_scheduled()
    assert not queue.ensure_sweep_scheduled()
    q = queue.get_queue()
    [first] = q.scheduled_job_registry.get_job_ids()
    q.enqueue("postbacks.jobs.sweep")
    work(q)
    ids = set(q.scheduled_job_registry.get_job_ids())
    assert len(ids) == 2 and first in ids
    assert q.connection.get(queue.SWEEP_KEY).decode() in ids - {first}


def test_the_periodic_sweep_leaves_deliveries_that_are_only_just_due(
    spot, lead, receiver, own_redis, settings
):
    settings.POSTBACKS_SWEEP_INTERVAL = 60
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    _, _, [d] = accept(lead, "reg")
    assert queue.sweep(grace=60) == 0  # its own job is still waiting in the queue
    Delivery.objects.filter(pk=d.pk).update(next_attempt=timezone.now() - timedelta(minutes=2))
    assert queue.sweep(grace=60) == 1
    assert queue.get_queue().count == 1

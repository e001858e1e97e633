"""Through RQ: a Redis outage, a lost job or an early one delays a postback by at
most one sweep, never loses it.

These tests start their own redis-server on a free port, so they can stop it.
"""

import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from postbacks.delivery.fanout import accept
from postbacks.loops import queue
from postbacks.loops.worker import DeliveryWorker
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
    """A real RQ worker of ours, in this process so it shares the test's database."""
    DeliveryWorker([q], connection=q.connection).work(burst=True)


class SimpleWorkerWithoutSweep(DeliveryWorker):
    """Runs jobs only, so a test can tell that the job did the sending."""

    def work(self, burst=False, **kwargs):
        return super(DeliveryWorker, self).work(burst=burst, **kwargs)


def test_a_postback_accepted_while_redis_is_down_is_sent_by_a_worker_without_a_job(
    spot, lead, receiver, own_redis, django_capture_on_commit_callbacks
):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb?c={cl_id}")
    own_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        accept(lead, "reg")  # enqueueing fails: logged, the row stays pending
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.PENDING
    own_redis.start()  # back, and empty
    q = queue.get_queue()
    assert q.count == 0
    work(q)  # the worker sweeps the database: no job needed
    assert [r.path for r in receiver.wait_for(1)] == ["/pb?c=trk-1"]
    delivery.refresh_from_db()
    assert delivery.status == Delivery.SUCCESS


def test_sweep_deliveries_sends_what_is_due_with_redis_down(spot, lead, receiver, own_redis):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    own_redis.stop()
    accept(lead, "reg")
    call_command("sweep_deliveries")
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get().status == Delivery.SUCCESS


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
    SimpleWorkerWithoutSweep([q], connection=q.connection).work(burst=True)
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get().status == Delivery.SUCCESS


def test_a_retry_is_scheduled_in_rq_at_its_next_attempt(spot, lead, receiver, own_redis):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    receiver.reply(500)
    _, _, [d] = accept(lead, "reg")
    q = queue.get_queue()
    q.enqueue("postbacks.loops.jobs.deliver", str(d.pk))
    SimpleWorkerWithoutSweep([q], connection=q.connection).work(burst=True)
    d.refresh_from_db()
    assert d.status == Delivery.PENDING and d.attempts == 1
    [job_id] = q.scheduled_job_registry.get_job_ids()
    scheduled = q.scheduled_job_registry.get_scheduled_time(job_id)
    assert abs((scheduled - d.next_attempt).total_seconds()) < 1


def test_a_job_that_starts_before_its_delivery_is_due_waits_and_sends_it(
    spot, lead, receiver, own_redis
):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    _, _, [d] = accept(lead, "reg")
    due = timezone.now() + timedelta(seconds=0.8)
    Delivery.objects.filter(pk=d.pk).update(next_attempt=due)
    q = queue.get_queue()
    q.empty()
    q.enqueue("postbacks.loops.jobs.deliver", str(d.pk))  # as RQ may start a scheduled job early
    SimpleWorkerWithoutSweep([q], connection=q.connection).work(burst=True)
    d.refresh_from_db()
    assert d.status == Delivery.SUCCESS
    assert d.attempt_log.get().created >= due


def test_sweeping_a_backlog_adds_no_jobs_and_sends_each_delivery_once(
    spot, lead, receiver, own_redis, django_capture_on_commit_callbacks
):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            accept(lead, "dep", amount=n + 1, tid=f"t{n}")
    q = queue.get_queue()
    assert q.count == 1  # one look job for all three, waiting
    call_command("sweep_deliveries")
    call_command("sweep_deliveries")
    assert q.count == 1 and len(receiver.wait_for(3)) == 3
    work(q)  # the jobs find their deliveries sent
    ids = [r.headers["X-Delivery-Id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 3


def test_look_jobs_at_a_trickle_gather_what_is_written_while_they_wait(
    spot, lead, receiver, own_redis, django_capture_on_commit_callbacks
):
    """A look job starts at most every LOOK_GATHER seconds; a delivery written
    while it waits makes no job of its own (its look goes in the waiting one)."""
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    q = queue.get_queue()
    # The job waits out the key's time to live, counted from here (not from
    # its start: writing the delivery below takes some of it).
    looked = time.monotonic()
    q.connection.set(queue.LOOKED_KEY, 1, px=int(queue.LOOK_GATHER * 1000))  # a look just ran
    with django_capture_on_commit_callbacks(execute=True):
        accept(lead, "reg")
    [job] = q.jobs
    counts = []

    def written_meanwhile():  # what a writer does once its transaction commits
        time.sleep(queue.LOOK_GATHER / 5)
        queue.look()
        counts.append(q.count)

    writer = threading.Thread(target=written_meanwhile)
    writer.start()
    job.perform()  # no loop runs in this process: the job sends what is due
    writer.join(5)
    assert time.monotonic() - looked >= queue.LOOK_GATHER * 0.9
    assert counts == [1]  # only the waiting job
    assert len(receiver.wait_for(1)) == 1
    queue.look()  # after the job looked, a new delivery makes a new job
    assert q.count == 2


def test_a_busy_loops_call_for_help_does_not_wait_to_gather(spot, lead, receiver, own_redis):
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    accept(lead, "reg")
    q = queue.get_queue()
    q.empty()
    q.connection.delete(queue.LOOK_KEY)
    q.connection.set(queue.LOOKED_KEY, 1, px=5000)  # a gathering job would wait 5 s
    queue.look(gather=False)  # what a loop whose claim came back full does
    [job] = q.jobs
    started = time.monotonic()
    job.perform()
    assert time.monotonic() - started < 2.5
    assert len(receiver.wait_for(1)) == 1

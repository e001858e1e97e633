"""Requests that write while the embedded delivery loop writes wait their turn.

Without Redis the web process's loop thread claims and records deliveries in
its own transactions while requests write theirs. SQLite takes one writer at
a time; the other must wait (the busy timeout), never answer an error.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection
from django.test import Client as HttpClient

from crm.models import Client, Conversion
from postbacks.loops import embedded
from postbacks.models import Delivery, OutgoingPostback
from tests.gunicorn import free_port, listening, serving
from tracker.models import Spot

pytestmark = pytest.mark.usefixtures("outgoing")


THREADS = 6
PER_THREAD = 15


def post_deposits(path, click_ids, answers):
    """One request thread: a deposit per click id, through the incoming URL."""
    web = HttpClient(raise_request_exception=False)
    try:
        for click_id in click_ids:
            answer = web.get(path, {"clickid": click_id, "goal": "dep", "sum": "10"})
            answers.append((answer.status_code, answer.content[:300]))
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_postbacks_arriving_while_the_loop_delivers_are_all_accepted(receiver, settings):
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.005  # the loop writes as often as it can
    spot = Spot.objects.create(name="Race", slug="race", answer_after_processing=True)
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    leads = [
        Client.objects.create(spot=spot, name=f"c{i}", advert_pixel="px")
        for i in range(THREADS * PER_THREAD)
    ]
    path = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    stop, answers = threading.Event(), []
    loop = threading.Thread(target=embedded.run_forever, args=(stop,), daemon=True)
    loop.start()
    senders = [
        threading.Thread(
            target=post_deposits,
            args=(path, [c.click_id for c in leads[i::THREADS]], answers),
        )
        for i in range(THREADS)
    ]
    try:
        for t in senders:
            t.start()
        for t in senders:
            t.join(60)
        expected = Delivery.objects.count()
        receiver.wait_for(expected, timeout=20)
    finally:
        stop.set()
        embedded.wake()
        loop.join(10)
    failed = [a for a in answers if a[0] != 200]
    assert not failed, failed[:3]
    assert len(answers) == THREADS * PER_THREAD
    assert Conversion.objects.filter(goal__token="dep").count() == THREADS * PER_THREAD
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.SUCCESS}


# -- as deployed: gunicorn's processes, each with its loop, on one SQLite file --


@pytest.fixture
def file_db(transactional_db):
    if connection.vendor != "sqlite":
        pytest.skip("the embedded mode's own database: SQLite pass only")
    return connection.settings_dict["NAME"]


@pytest.fixture
def gunicorn(file_db, tmp_path):
    """The base URL of the project's gunicorn, embedded mode, on the test's SQLite file."""
    port = free_port()
    unset = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        DATABASE_URL=f"sqlite:///{file_db}",
        SECRET_KEY="test-embedded-race",
        WEB_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="3",  # three processes, three loops, one file
        POSTBACKS_ALLOWED_NETWORKS="127.0.0.1/32",
        POSTBACKS_EMBEDDED_POLL="0.01",
    )
    log_path = tmp_path / "gunicorn.log"
    with serving(env, log_path, listening(port)):
        yield f"http://127.0.0.1:{port}", log_path


def test_gunicorn_with_its_loops_answers_every_postback_sent_at_once(gunicorn, receiver):
    base, log_path = gunicorn
    spot = Spot.objects.create(name="Race", slug="race", answer_after_processing=True)
    OutgoingPostback.objects.create(spot=spot, name="p", url=receiver.url + "/pb")
    count = THREADS * PER_THREAD
    leads = [
        Client.objects.create(spot=spot, name=f"c{i}", advert_pixel="px") for i in range(count)
    ]
    url = f"{base}/api/postbacks/{spot.postback_token}/tracker-postback"

    def deposit(lead):
        answer = requests.get(url, {"clickid": lead.click_id, "goal": "dep", "sum": "10"})
        return answer.status_code, answer.text[:300]

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(deposit, leads))
    delivered = Delivery.objects.filter(status=Delivery.SUCCESS)
    deadline = time.monotonic() + 30
    while delivered.count() < count and time.monotonic() < deadline:
        time.sleep(0.1)  # a send is recorded just after the receiver answers it

    assert [a for a in answers if a[0] != 200] == []
    assert Conversion.objects.filter(goal__token="dep").count() == count
    assert delivered.count() == count
    assert len(receiver.requests) == count
    assert "locked" not in log_path.read_text(errors="replace")

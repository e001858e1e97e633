"""Simultaneous postbacks of one client are decided one after the other."""

import threading

import pytest
from django.db import connection
from django.test import Client as HttpClient

from crm.models import Client, Conversion
from postbacks.models import IncomingPostback
from tracker.models import Spot

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks are PostgreSQL's; SQLite serialises every writer anyway",
)

ROUNDS = 5  # clients, each getting two simultaneous first sales
THREADS = 2


def post_together(paths):
    barrier = threading.Barrier(len(paths))
    answers = []

    def call(path):
        try:
            barrier.wait(timeout=10)
            answers.append(HttpClient().get(path))
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=call, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return answers


def test_two_simultaneous_sales_make_one_dep_and_one_redep(transactional_db):
    spot = Spot.objects.create(name="Race", slug="race", answer_after_processing=True)
    for n in range(ROUNDS):
        lead = Client.objects.create(spot=spot, cl_id=f"race-{n}")
        path = (
            f"/api/postbacks/{spot.postback_token}/tracker-postback"
            f"?clickid={lead.click_id}&tracker.event=sale&tracker.cost=10"
        )
        answers = post_together([path] * THREADS)
        assert sorted(a.status_code for a in answers) == [200] * THREADS
        assert sorted(a.json()["goal"] for a in answers) == ["dep", "redep"]
        tokens = sorted(
            Conversion.objects.filter(client=lead).values_list("goal__token", flat=True)
        )
        assert tokens == ["dep", "redep"]
    assert IncomingPostback.objects.filter(status="accepted").count() == ROUNDS * THREADS

"""Simultaneous clicks on a spot with managers spread evenly over them."""

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as HttpClient

from crm.models import Client
from postbacks.loops import intake
from tracker.models import Spot

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks are PostgreSQL's; SQLite serialises every writer anyway",
)

THREADS = 6


def test_simultaneous_clicks_take_turns(transactional_db):
    spot = Spot.objects.create(name="Race", slug="race", target_url="https://land.example/")
    managers = [get_user_model().objects.create_user(f"m{n}", is_staff=True) for n in range(3)]
    spot.managers.set(managers)
    barrier = threading.Barrier(THREADS)
    answers = []

    def click():
        try:
            barrier.wait(timeout=10)
            answers.append(HttpClient().get("/go/race").status_code)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=click) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert answers == [302] * THREADS
    intake.decide_all()  # the turns are taken when the workers settle the clicks
    counts = Counter(Client.objects.values_list("manager", flat=True))
    assert counts == {m.pk: THREADS // 3 for m in managers}

"""Clicks and bot registrations on one spot at once: none is lost to a deadlock.

A click and a bot registration of one spot used to lock the spot's row and the
statistics rollup's rows in opposite orders, and PostgreSQL broke the cycle by
failing one of them: a 500 page, and a click without its client. Locks are now
taken in one order, and a transaction that still loses such a race (to a
deadlock or a serialization failure) is run again a few times before the caller
is answered 503.
"""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as HttpClient

from crm.models import Client
from tracker.models import Spot

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks and deadlocks are PostgreSQL's; SQLite serialises every writer anyway",
)

EACH = 50  # clicks, and as many bot registrations, all at once
ROUNDS = 3


def together(calls):
    """Run every call on its own thread (and connection), released at once."""
    barrier = threading.Barrier(len(calls))
    answers = []

    def run(call):
        try:
            barrier.wait(timeout=30)
            answers.append(call())
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return answers


def click(slug, n):
    def call():
        path = f"/go/{slug}?advert__campaign_id=c{n % 3}&geo=DE"
        answer = HttpClient(raise_request_exception=False).get(path)
        return ("click", answer.status_code, answer.content[:300])

    return call


def register(spot, user_id):
    def call():
        answer = HttpClient(raise_request_exception=False).post(
            "/api/clients",
            {"user_id": user_id, "geo": "DE", "advert": {"campaign_id": f"c{user_id % 3}"}},
            content_type="application/json",
            headers={"X-Api-Key": spot.api_key},
        )
        return ("bot", answer.status_code, answer.content[:300])

    return call


def storm(spot, round_no):
    base = round_no * 1000
    calls = [click(spot.slug, n) for n in range(EACH)]
    calls += [register(spot, base + n) for n in range(EACH)]
    # Interleaved, so both kinds start together.
    calls = [c for pair in zip(calls[:EACH], calls[EACH:], strict=True) for c in pair]
    return together(calls)


def check_storm(spot):
    for round_no in range(ROUNDS):
        before = Client.objects.filter(spot=spot).count()
        answers = storm(spot, round_no)
        failed = [a for a in answers if a[1] >= 500]
        assert failed == [], failed
        assert sorted(a[1] for a in answers if a[0] == "click") == [302] * EACH
        assert sorted(a[1] for a in answers if a[0] == "bot") == [201] * EACH
        assert Client.objects.filter(spot=spot).count() == before + 2 * EACH


def test_clicks_and_bot_registrations_on_one_spot_all_stored(transactional_db):
    spot = Spot.objects.create(name="Busy", slug="busy", target_url="https://land.example/")
    check_storm(spot)


def test_with_managers_every_lead_is_stored_and_assigned(transactional_db):
    spot = Spot.objects.create(name="Team", slug="team", target_url="https://land.example/")
    managers = [get_user_model().objects.create_user(f"m{n}", is_staff=True) for n in range(3)]
    spot.managers.set(managers)
    check_storm(spot)
    assert not Client.objects.filter(spot=spot, manager=None).exists()

"""Clicks and bot registrations on one spot at once: none is lost to a deadlock.

A click and a bot registration of one spot used to lock the spot's row and the
statistics rollup's rows in opposite orders, and PostgreSQL broke the cycle by
failing one of them: a 500 page, and a click without its client. Locks are now
taken in one order, and a transaction that still loses such a race (to a
deadlock or a serialization failure) is run again a few times before the caller
is answered 503.
"""

import json
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.test import Client as HttpClient
from django.test import RequestFactory

from crm.models import Client, DailyStat
from postbacks.incoming import settling
from postbacks.loops import intake
from tracker.models import Spot
from tracker.retry import ATTEMPTS, retried
from tracker.unavailable import DatabaseUnavailableMiddleware

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
    intake.decide_all()  # a click's client gets its manager when the workers settle it
    assert not Client.objects.filter(spot=spot, manager=None).exists()


# -- a transaction that loses a race is run again --------------------------


def wait_for_lock_waiter(timeout=10):
    """Until another session of this database waits for a row lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no request waited for the held rollup row")


def deadlocked(request, rows):
    """Make `request` (run on a thread) the loser of a real deadlock, then let it go on.

    This transaction locks the last of the rollup `rows` the request writes
    (they are written in key order: grain "" first, "g" last, so the request
    holds the others by then), waits until the request waits for it, then
    updates the first one, which the request holds: a cycle. The request has
    waited longer, so PostgreSQL rolls back the request's transaction, not
    this one; this one then commits and lets the request's next run through.
    """
    answers = []

    def run():
        try:
            answers.append(request())
        finally:
            connection.close()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '5s'")
        assert list(rows.filter(grain="g").select_for_update())
        thread = threading.Thread(target=run)
        thread.start()
        wait_for_lock_waiter()
        assert rows.filter(grain="").update(count=F("count"))
    thread.join(timeout=30)
    return answers


def lead_rows(spot):
    return DailyStat.objects.filter(spot=spot, basis=DailyStat.CLICK, goal_pk=0, geo__in=["", "DE"])


@pytest.fixture
def warm_spot(transactional_db):
    """A spot with today's rollup rows of a lead from DE: the rows the test holds."""
    spot = Spot.objects.create(
        name="Held", slug="held", target_url="https://land.example/", answer_after_processing=True
    )
    assert HttpClient().get("/go/held?geo=DE").status_code == 302
    intake.decide_all()
    return spot


def test_the_settling_of_a_click_that_loses_a_deadlock_is_run_again(warm_spot):
    """A click is one insert; its lead is counted by the workers' settling, which
    takes the rollup rows, and runs again after losing a deadlock on them."""

    def click_and_settle():
        answer = click("held", 1)()
        return (*answer, settling.settle_new())

    answers = deadlocked(click_and_settle, lead_rows(warm_spot))
    assert [(a[1], a[3]) for a in answers] == [(302, 1)], answers
    assert Client.objects.filter(spot=warm_spot, settled=True).count() == 2
    assert lead_rows(warm_spot).get(grain="g").count == 2


def test_a_bot_registration_that_loses_a_deadlock_is_run_again(warm_spot):
    answers = deadlocked(register(warm_spot, 77), lead_rows(warm_spot))
    assert [a[1] for a in answers] == [201], answers
    assert Client.objects.filter(spot=warm_spot, user_id=77).count() == 1


def test_a_postback_that_loses_a_deadlock_is_run_again(warm_spot):
    first = Client.objects.create(spot=warm_spot, geo="DE")
    second = Client.objects.create(spot=warm_spot, geo="DE")
    url = f"/api/postbacks/{warm_spot.postback_token}/tracker-postback?tracker.event=dep&sum=5"

    def sale(client):
        def call():
            answer = HttpClient(raise_request_exception=False).get(
                f"{url}&clickid={client.click_id}"
            )
            return ("postback", answer.status_code, answer.content[:300])

        return call

    assert sale(first)()[1] == 200  # the rollup rows of a deposit of today exist
    dep = warm_spot.goals.get(token="dep")
    rows = DailyStat.objects.filter(
        spot=warm_spot, basis=DailyStat.CONVERSION, goal_pk=dep.pk, geo__in=["", "DE"]
    )
    answers = deadlocked(sale(second), rows)
    assert [a[1] for a in answers] == [200], answers
    assert second.conversions.get().goal == dep


def lose_every_time(calls):
    calls.append(1)
    with connection.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' "
            "USING ERRCODE = 'deadlock_detected'; END $$"
        )


def test_a_transaction_that_keeps_losing_gives_up_and_the_caller_gets_503(transactional_db):
    calls = []
    with pytest.raises(OperationalError) as lost:
        retried(lose_every_time, calls)
    assert len(calls) == ATTEMPTS
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    answer = middleware.process_exception(RequestFactory().get("/go/held"), lost.value)
    assert answer.status_code == 503
    assert answer["Retry-After"] == "1"
    assert "nothing was recorded" in json.loads(answer.content)["error"]


def test_an_error_that_is_not_a_lost_race_is_not_run_again(transactional_db):
    calls = []

    def broken():
        calls.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM tracker_spot")

    with pytest.raises(Exception):  # noqa: B017 - whatever the driver calls it
        retried(broken)
    assert calls == [1]

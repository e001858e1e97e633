"""GET /healthz: the database, Redis and the delivery backlog, for load balancers."""

import socket
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.test_outgoing_redis import free_port, own_redis  # noqa: F401  (a fixture)


@pytest.fixture
def embedded(settings):
    settings.REDIS_URL = ""
    return settings


def overdue(lead, seconds, status=Delivery.PENDING, claimed_until=None):
    """A delivery of `lead` that was due `seconds` ago."""
    _, _, [delivery] = accept(lead, "dep", tid=str(uuid.uuid4()))
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status,
        next_attempt=timezone.now() - timedelta(seconds=seconds),
        claimed_until=claimed_until,
    )
    return delivery


@pytest.fixture
def target(spot):
    return OutgoingPostback.objects.create(spot=spot, name="p", url="https://example.com/pb")


def test_it_answers_200_with_each_part_on_the_embedded_default(client, db, embedded):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "ok": True,
        "database": "ok",
        "redis": "not configured",
        "deliveries": {"oldest_overdue_seconds": 0, "late": False, "late_after_seconds": 900},
        "incoming": {
            "queued": 0,
            "oldest_queued_seconds": 0,
            "late": False,
            "late_after_seconds": 120.0,
        },
    }
    assert "no-store" in answer["Cache-Control"]


def test_it_needs_no_login_and_answers_head_too(client, db, embedded):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_it_reports_the_age_of_the_oldest_overdue_delivery(client, lead, target, embedded):
    overdue(lead, 300)
    overdue(lead, 30)  # due within the sweep interval: its job is simply waiting
    answer = client.get("/healthz").json()
    assert 300 <= answer["deliveries"]["oldest_overdue_seconds"] <= 305
    assert answer["deliveries"]["late"] is False


def test_a_delivery_due_within_the_sweep_interval_is_not_overdue(client, lead, target, embedded):
    overdue(lead, 30)
    assert client.get("/healthz").json()["deliveries"]["oldest_overdue_seconds"] == 0


def test_an_abandoned_claim_counts_from_when_its_delivery_was_due(client, lead, target, embedded):
    expired = timezone.now() - timedelta(seconds=120)
    overdue(lead, 400, status=Delivery.SENDING, claimed_until=expired)
    overdue(lead, 200)
    assert 400 <= client.get("/healthz").json()["deliveries"]["oldest_overdue_seconds"] <= 405


def test_a_claim_still_held_is_not_overdue(client, lead, target, embedded):
    held = timezone.now() + timedelta(seconds=60)
    overdue(lead, 400, status=Delivery.SENDING, claimed_until=held)
    assert client.get("/healthz").json()["deliveries"]["oldest_overdue_seconds"] == 0


def test_a_late_backlog_says_late_and_stays_200(client, lead, target, embedded):
    embedded.POSTBACKS_HEALTH_MAX_LAG = 600
    overdue(lead, 1000)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["deliveries"]["late"] is True
    assert answer.json()["deliveries"]["late_after_seconds"] == 600


def test_finished_deliveries_are_not_overdue(client, lead, target, embedded):
    overdue(lead, 1000, status=Delivery.SUCCESS)
    overdue(lead, 1000, status=Delivery.FAILED)
    assert client.get("/healthz").json()["deliveries"]["oldest_overdue_seconds"] == 0


def test_a_redis_that_does_not_answer_makes_it_503_naming_redis_quickly(client, db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    answer = client.get("/healthz")
    assert time.monotonic() - started < 3
    assert answer.status_code == 503
    assert answer["Retry-After"]
    data = answer.json()
    assert data["ok"] is False
    assert data["error"] == "redis is down"
    assert data["database"] == "ok"
    assert data["redis"].startswith("down: ConnectionError")
    assert data["deliveries"]["oldest_overdue_seconds"] == 0


def test_a_hung_redis_cannot_hang_the_probe(client, db, settings):
    # A listener that accepts (the kernel does, up to the backlog) and never answers.
    with socket.create_server(("127.0.0.1", 0)) as hung:
        settings.REDIS_URL = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        started = time.monotonic()
        answer = client.get("/healthz")
        assert time.monotonic() - started < 3
    assert answer.status_code == 503
    assert answer.json()["redis"].startswith("down: TimeoutError")


def test_it_pings_the_configured_redis(client, db, own_redis):  # noqa: F811
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["redis"] == "ok"

"""Log retention: purge_logs removes old incoming rows and delivery attempts
and keeps what is still needed."""

import datetime

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from postbacks.loops import retention
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback

NOW = timezone.now()


def days_ago(n):
    return NOW - datetime.timedelta(days=n)


def incoming(spot, status, age_days):
    row = IncomingPostback.objects.create(
        token=str(spot.postback_token), spot=spot, method="GET", path="/x", status=status
    )
    IncomingPostback.objects.filter(pk=row.pk).update(received=days_ago(age_days))
    return row.pk


def attempt(delivery, age_days):
    row = DeliveryAttempt.objects.create(delivery=delivery, number=1, method="GET", url="u")
    DeliveryAttempt.objects.filter(pk=row.pk).update(created=days_ago(age_days))
    return row.pk


@pytest.fixture
def logs(spot, lead):
    conversion, _ = lead.record_conversion("sale", 50, "USD", "t1")
    postback = OutgoingPostback.objects.create(spot=spot, name="T", url="https://t.example/x")

    def delivery(status):
        return Delivery.objects.create(
            conversion=conversion, spot=spot, postback=postback, status=status
        )

    done, failed, pending = (
        delivery(Delivery.SUCCESS),
        delivery(Delivery.FAILED),
        delivery(Delivery.PENDING),
    )
    return {
        "old accepted": incoming(spot, IncomingPostback.ACCEPTED, 100),
        "new accepted": incoming(spot, IncomingPostback.ACCEPTED, 5),
        "old unmatched": incoming(spot, IncomingPostback.UNMATCHED, 100),
        "unmatched in look-back": incoming(spot, IncomingPostback.UNMATCHED, 20),
        "old queued": incoming(spot, IncomingPostback.QUEUED, 100),
        "old attempt, sent": attempt(done, 100),
        "old attempt, failed": attempt(failed, 100),
        "old attempt, still pending": attempt(pending, 100),
        "new attempt": attempt(done, 5),
    }


def left(logs):
    rows = set(IncomingPostback.objects.values_list("pk", flat=True))
    attempts = set(DeliveryAttempt.objects.values_list("pk", flat=True))
    return {name for name, pk in logs.items() if pk in (attempts if "attempt" in name else rows)}


@override_settings(INCOMING_KEEP_DAYS=10, ATTEMPTS_KEEP_DAYS=10)
def test_purge_logs_keeps_what_is_still_needed(logs, capsys):
    call_command("purge_logs")
    assert left(logs) == {
        "new accepted",
        "unmatched in look-back",  # may still find its client
        "old queued",  # answered 200 and not decided yet (no worker ran)
        "old attempt, still pending",  # counts towards its attempt limit
        "new attempt",
    }
    out = capsys.readouterr().out
    assert "incoming postbacks: 2 removed" in out and "delivery attempts: 2 removed" in out


@override_settings(INCOMING_KEEP_DAYS=10, ATTEMPTS_KEEP_DAYS=10)
def test_a_dry_run_counts_and_removes_nothing(logs, capsys):
    call_command("purge_logs", "--dry-run")
    assert left(logs) == set(logs)
    out = capsys.readouterr().out
    assert "incoming postbacks: 2 older than 10 days would be removed" in out
    assert "delivery attempts: 2 older than 10 days would be removed" in out


@override_settings(INCOMING_KEEP_DAYS=0, ATTEMPTS_KEEP_DAYS=0)
def test_zero_keeps_logs_forever(logs, capsys):
    call_command("purge_logs")
    assert left(logs) == set(logs)
    assert "kept forever" in capsys.readouterr().out


@override_settings(INCOMING_KEEP_DAYS=10, ATTEMPTS_KEEP_DAYS=10)
def test_purge_goes_in_batches(logs, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 1)
    assert retention.purge(retention.purgeable_incoming()) == 2
    assert retention.purge(retention.purgeable_attempts()) == 2


@override_settings(INCOMING_KEEP_DAYS=10, ATTEMPTS_KEEP_DAYS=10)
def test_the_daily_purge_runs_once_a_day(logs, spot, monkeypatch):
    monkeypatch.setattr(retention, "_last_run", 0.0)
    retention.purge_daily()
    assert "new accepted" in left(logs) and "old accepted" not in left(logs)
    again = incoming(spot, IncomingPostback.ACCEPTED, 100)
    retention.purge_daily()  # within the day: nothing more
    assert IncomingPostback.objects.filter(pk=again).exists()

"""Unmatched postbacks replayed once their client exists: admin action and command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from crm.models import Client, Conversion
from postbacks.incoming.process import replay
from postbacks.models import IncomingPostback


def url(spot, query):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback?{query}"


@pytest.fixture
def unmatched(client, spot):
    """Two postbacks for a tracker click id no client has yet: a sale, then another."""
    client.get(url(spot, "clickid=late-1&tracker.event=sale&tracker.cost=10"))
    client.get(url(spot, "clickid=late-1&tracker.event=sale&tracker.cost=20"))
    rows = list(IncomingPostback.objects.order_by("id"))
    assert [r.status for r in rows] == ["unmatched", "unmatched"]
    return rows


def test_the_command_replays_unmatched_postbacks_oldest_first(spot, unmatched):
    late = Client.objects.create(spot=spot, cl_id="late-1")
    out = StringIO()
    call_command("replay_postbacks", stdout=out)
    assert list(late.conversions.order_by("id").values_list("goal__token", "amount")) == [
        ("dep", 10),
        ("redep", 20),
    ]
    text = out.getvalue()
    assert "Replaying 2 postback(s)." in text
    assert f"[1/2] #{unmatched[0].pk} unmatched -> accepted" in text
    assert "accepted: 2" in text
    row = IncomingPostback.objects.get(pk=unmatched[0].pk)
    assert (row.status, row.client, row.http_status) == ("accepted", late, 200)
    assert "Replayed" in row.warnings and "was unmatched" in row.warnings


def test_a_replay_while_the_client_is_still_missing_stays_unmatched(spot, unmatched):
    out = StringIO()
    call_command("replay_postbacks", stdout=out)
    assert "unmatched: 2" in out.getvalue()
    assert set(IncomingPostback.objects.values_list("status", flat=True)) == {"unmatched"}


def test_a_replayed_postback_is_not_counted_twice(spot, unmatched):
    Client.objects.create(spot=spot, cl_id="late-1")
    row = unmatched[0]
    assert replay(row).status == "accepted"
    assert replay(IncomingPostback.objects.get(pk=row.pk)) is None  # accepted: not replayable
    call_command("replay_postbacks", stdout=StringIO())
    assert Conversion.objects.count() == 2


def test_the_command_replays_rejected_ones_only_when_asked(client, spot, lead):
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=payout"))
    assert IncomingPostback.objects.get().status == "rejected"
    spot.goals.create(name="Payout", token="payout")
    call_command("replay_postbacks", stdout=StringIO())
    assert not Conversion.objects.exists()
    call_command("replay_postbacks", "--rejected", "--spot", spot.slug, stdout=StringIO())
    assert Conversion.objects.get().goal.token == "payout"


def test_the_command_says_when_nothing_matches_its_options(spot):
    with pytest.raises(CommandError, match="No postback to replay"):
        call_command("replay_postbacks", "--spot", "nope", stdout=StringIO())


def test_the_admin_action_replays_the_selected_postbacks(admin_client, spot, unmatched):
    late = Client.objects.create(spot=spot, cl_id="late-1")
    response = admin_client.post(
        reverse("admin:postbacks_incomingpostback_changelist"),
        {"action": "replay_selected", "_selected_action": [r.pk for r in unmatched]},
        follow=True,
    )
    assert "Replayed. accepted: 2" in response.content.decode()
    assert late.conversions.count() == 2
    assert set(IncomingPostback.objects.values_list("status", flat=True)) == {"accepted"}


def test_a_postback_whose_processing_was_lost_is_replayed_once_stale(spot, lead):
    # As if the process died between storing the request and processing it.
    row = IncomingPostback.objects.create(
        token=str(spot.postback_token),
        spot=spot,
        method="GET",
        path=f"/api/postbacks/{spot.postback_token}/tracker-postback",
        query=f"clickid={lead.click_id}&tracker.event=registration",
    )
    call_command("replay_postbacks", stdout=StringIO())
    assert not Conversion.objects.exists()  # still fresh: maybe being processed right now
    IncomingPostback.objects.filter(pk=row.pk).update(received=timezone.now() - timedelta(hours=1))
    out = StringIO()
    call_command("replay_postbacks", stdout=out)
    assert "received -> accepted" in out.getvalue()
    assert Conversion.objects.get().client == lead


@override_settings(INCOMING_MAX_STORED=50)
def test_a_request_stored_cut_short_is_not_replayed_from_its_remains(client, spot):
    client.get(url(spot, "clickid=late-2&tracker.event=registration&pad=" + "x" * 100))
    Client.objects.create(spot=spot, cl_id="late-2")
    row = IncomingPostback.objects.get()
    assert row.status == "unmatched"
    outcome = replay(row)
    assert outcome.http_status == 413
    assert not Conversion.objects.exists()


def test_the_log_entry_has_a_replay_button(admin_client, spot, unmatched):
    late = Client.objects.create(spot=spot, cl_id="late-1")
    row = unmatched[0]
    page = admin_client.get(reverse("admin:postbacks_incomingpostback_change", args=[row.pk]))
    replay_url = reverse("admin:postbacks_incomingpostback_replay", args=[row.pk])
    assert f'formaction="{replay_url}"' in page.content.decode()
    response = admin_client.post(replay_url, follow=True)
    assert "Replayed: accepted." in response.content.decode()
    assert late.conversions.get().goal.token == "dep"
    assert admin_client.get(replay_url).status_code == 405

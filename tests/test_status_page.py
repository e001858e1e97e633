"""The admin's Status page: queues and their oldest ages, the delivery loops'
heartbeats, the last error of each failing target, and the last hour per five
minutes; for team leads and superusers only."""

import datetime
import re
import threading
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Client
from postbacks.admin import status
from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.loops import embedded, heartbeat
from postbacks.models import Delivery, DeliveryAttempt, IncomingPostback, OutgoingPostback
from tests.test_roles import login

pytestmark = pytest.mark.usefixtures("outgoing")

URL = "/admin/status/"


@pytest.fixture
def lead_client(client, team):
    return login(client, team["lead"])


def queue(response, name):
    return next(q for q in response.context["queues"] if q.name == name)


def test_a_manager_may_not_open_it_and_a_team_lead_may(client, team):
    assert login(client, team["ann"]).get(URL).status_code == 403
    assert login(client, team["lead"]).get(URL).status_code == 200
    assert reverse("admin:postbacks_status") == URL


def test_the_menu_links_to_it_for_a_team_lead_only(client, team):
    home = login(client, team["lead"]).get(reverse("admin:index"))
    assert f'href="{URL}"' in home.content.decode()
    home = login(client, team["ann"]).get(reverse("admin:index"))
    assert f'href="{URL}"' not in home.content.decode()


def test_queues_count_their_rows_and_age_the_oldest(lead_client, spot, receiver, settings):
    settings.POSTBACKS_DELAY_SCALE = 1  # the retry a minute away: still retrying below
    OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    OutgoingPostback.objects.create(spot=spot, name="Off", url=receiver.url + "/off", enabled=False)
    receiver.reply(503, "down")
    accept(Client.objects.create(spot=spot, name="Ann", advert_pixel="px"), "reg")
    batch.send_due()  # Own: retrying after a 503; Off: held
    accept(Client.objects.create(spot=spot, name="Bob", advert_pixel="px"), "reg")
    due = Delivery.objects.filter(postback__name="Own", attempts=0)
    due.update(next_attempt=timezone.now() - datetime.timedelta(minutes=7))
    IncomingPostback.objects.create(token="t", method="GET", path="/", status="unmatched")
    IncomingPostback.objects.filter(status="unmatched").update(
        received=timezone.now() - datetime.timedelta(hours=3)
    )

    response = lead_client.get(URL)

    assert response.status_code == 200
    assert queue(response, "Deliveries due now").count == 1
    assert queue(response, "Deliveries due now").age_text == "7 min"
    assert queue(response, "Deliveries retrying").count == 1
    assert queue(response, "Deliveries scheduled later (first try)").count == 0  # retries apart
    assert queue(response, "Deliveries held (postback off)").count == 2
    assert queue(response, "Incoming unmatched (waiting for their client)").age_text == "3 h"
    assert response.context["disabled"] == 1
    page = response.content.decode()
    assert "the oldest due 7 min ago" in page
    assert "1 outgoing postback switched off" in page


def test_a_failing_target_shows_its_last_error(lead_client, spot, receiver, settings):
    settings.POSTBACKS_DELAY_SCALE = 1
    OutgoingPostback.objects.create(spot=spot, name="Partner tracker", url=receiver.url + "/pb")
    receiver.reply(502, "Bad gateway")
    accept(Client.objects.create(spot=spot, name="Ann", advert_pixel="px"), "dep", amount=5)
    batch.send_due()

    response = lead_client.get(URL)

    [line] = response.context["failing"]
    assert line["target"].name.startswith("Partner tracker")
    assert (line["target"].retrying, line["reason"]) == (1, "HTTP 502")
    assert 'title="HTTP 502"' in response.content.decode()


def test_the_last_hour_counts_attempts_and_incoming_per_five_minutes(lead_client, spot, receiver):
    OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    receiver.reply(500)
    for name in ("Ann", "Bob"):
        lead = Client.objects.create(spot=spot, name=name, advert_pixel="px")
        lead_client.get(
            f"/api/postbacks/{spot.postback_token}/tracker-postback",
            {"clickid": lead.click_id, "goal": "reg"},
        )
    batch.send_due()  # the first fails (500), the second is delivered
    Delivery.objects.update(next_attempt=timezone.now())
    batch.send_due()  # the retry of the first, delivered
    # An attempt and a postback of an hour and a half ago are outside the hour.
    old = timezone.now() - datetime.timedelta(minutes=90)
    DeliveryAttempt.objects.create(number=1, method="GET", url="http://x/", success=True)
    DeliveryAttempt.objects.filter(url="http://x/").update(created=old)
    IncomingPostback.objects.create(token="t", method="GET", path="/")
    IncomingPostback.objects.filter(token="t").update(received=old)

    response = lead_client.get(URL)

    table = {line["name"]: line for line in response.context["rates"]["table"]}
    assert table["Delivered"]["total"] == 2
    assert table["Failed attempts"]["total"] == 1
    assert table["Incoming postbacks"]["total"] == 2
    # All in the step now running (or the one before, when the test crossed a step).
    assert sum(table["Delivered"]["values"][-2:]) == 2
    assert len(response.context["rates"]["labels"]) == status.STEPS
    page = response.content.decode()
    assert 'id="status-chart"' in page
    assert len(re.findall(r'<polyline class="series"', page)) == 3


def test_five_minute_steps_end_with_the_one_now_running():
    now = datetime.datetime(2026, 3, 2, 10, 7, 30, tzinfo=datetime.UTC)
    starts, width = status.steps(now)
    assert (starts[0].strftime("%H:%M"), starts[-1].strftime("%H:%M")) == ("09:10", "10:05")
    assert width == datetime.timedelta(minutes=5)


@pytest.mark.django_db(transaction=True)
def test_a_running_loop_shows_its_heartbeat(client, team, settings):
    settings.REDIS_URL = ""
    settings.POSTBACKS_EMBEDDED_POLL = 0.05
    stop = threading.Event()
    loop = threading.Thread(
        target=embedded.run_forever, args=(stop,), name="status-test-loop", daemon=True
    )
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while not heartbeat.beats() and time.monotonic() < deadline:
            time.sleep(0.02)
        response = login(client, team["lead"]).get(URL)
    finally:
        stop.set()
        embedded.wake()
        loop.join(5)

    [beat] = [b for b in response.context["loops"] if b["name"].endswith("status-test-loop")]
    assert not beat["late"]
    assert beat["age"] == "under a minute"
    assert "status-test-loop" in response.content.decode()
    # A loop that stops takes its heartbeat with it.
    assert not [b for b in heartbeat.beats() if b["name"].endswith("status-test-loop")]


def test_a_silent_loop_is_late(client, team, settings):
    settings.REDIS_URL = ""
    heart = heartbeat.Heart(interval=1.0)
    heart.beat(handled=7, error="OperationalError: database is locked")
    heartbeat._here[heart.name]["at"] -= 60  # not heard of for a minute
    try:
        response = login(client, team["lead"]).get(URL)
    finally:
        heart.stop()
    [beat] = [b for b in response.context["loops"] if b["name"] == heart.name]
    assert beat["late"] and beat["handled"] == 7
    assert "(late)" in response.content.decode()
    assert "database is locked" in response.content.decode()

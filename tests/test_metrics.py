"""/metrics: Prometheus's text format, for the token or the allowed addresses only;
the counters of clicks, incoming postbacks and deliveries, the backlog's gauges,
and the sums over the processes of a real gunicorn."""

import datetime
import os
import socket
import time

import pytest
import requests
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from crm.models import Client
from postbacks.delivery.batch import send_due
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tests.gunicorn import free_port, serving
from tracker import metrics

TOKEN = "scrape-me-7c1f"
HOUR = datetime.timedelta(hours=1)


def samples(text):
    """{(sample name, sorted labels): value} of a scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def scrape(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def read(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    metrics._reading["at"] = None  # no backlog reading of an earlier test
    return TOKEN


def incoming_url(spot):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback"


# -- who may read -----------------------------------------------------------------


def test_metrics_are_off_without_a_token_or_addresses(client, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics").status_code == 404


def test_it_refuses_without_the_token_or_with_a_wrong_one(client, db, token):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert "METRICS_TOKEN" in missing.json()["error"]
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-7c1e")
    assert wrong.status_code == 401
    assert b"tracker_" not in wrong.content


def test_it_answers_the_token(client, db, token):
    found = scrape(client)
    assert ("tracker_deliveries_pending", ()) in found


def test_an_allowed_network_reads_without_a_token_and_another_address_is_refused(
    client, db, settings
):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.200.3").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="10.2.0.1")
    assert refused.status_code == 403
    assert "may not read" in refused.json()["error"]


def test_behind_a_proxy_the_allowlist_checks_the_callers_address(client, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["192.0.2.7"]
    settings.PROXY_HOPS = 1
    allowed = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.7"}
    assert client.get("/metrics", **allowed).status_code == 200
    # An entry the caller wrote itself, left of what our proxy appended, is not believed.
    forged = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "192.0.2.7, 198.51.100.9"}
    assert client.get("/metrics", **forged).status_code == 403


# -- what is counted ---------------------------------------------------------------


def test_clicks_are_counted_per_spot(client, spot, token):
    spot.target_url = "https://land.example.com/?c={{tracker.clickid}}"
    spot.save()
    before = read(scrape(client), "tracker_clicks_total", spot=spot.slug)
    assert client.get(f"/go/{spot.slug}?utm_source=fb").status_code == 302
    assert client.get(f"/go/{spot.slug}").status_code == 302
    after = read(scrape(client), "tracker_clicks_total", spot=spot.slug)
    assert after - before == 2


@pytest.mark.usefixtures("outgoing")
def test_three_postbacks_and_a_failing_delivery_read_3_and_1(client, spot, token, receiver):
    pb = OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    pb.goals.set([spot.goals.get(token="dep")])
    leads = [Client.objects.create(spot=spot, name=f"c{k}", advert_pixel="px") for k in range(3)]
    before = scrape(client)
    for lead, event in zip(leads, ["reg", "reg", "dep"], strict=True):
        answer = client.get(incoming_url(spot), {"clickid": lead.click_id, "goal": event})
        assert answer.status_code == 200, answer.content
    receiver.reply(503)
    send_due()
    after = scrape(client)

    def moved(name, **labels):
        return read(after, name, **labels) - read(before, name, **labels)

    assert moved("tracker_incoming_postbacks_total", spot=spot.slug, outcome="accepted") == 3
    assert moved("tracker_deliveries_total", kind="postback", outcome="http_5xx") == 1
    assert moved("tracker_deliveries_total", kind="postback", outcome="success") == 0
    assert moved("tracker_delivery_duration_seconds_count", kind="postback") == 1
    # No click id and no URL in any label.
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert leads[0].click_id not in text and receiver.url not in text


@pytest.mark.usefixtures("outgoing")
def test_a_success_is_timed_from_the_event(client, spot, token, receiver):
    OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    lead = Client.objects.create(spot=spot, name="c", advert_pixel="px")
    before = scrape(client)
    client.get(incoming_url(spot), {"clickid": lead.click_id, "goal": "reg"})
    send_due()
    after = scrape(client)
    lag = "tracker_delivery_lag_seconds_count"
    assert read(after, lag, kind="postback") - read(before, lag, kind="postback") == 1
    ok = "tracker_deliveries_total"
    assert (
        read(after, ok, kind="postback", outcome="success")
        - read(before, ok, kind="postback", outcome="success")
        == 1
    )


def test_an_unknown_token_and_an_unmatched_click_are_counted_with_their_outcome(
    client, spot, token
):
    before = scrape(client)
    client.get("/api/postbacks/not-a-token/tracker-postback", {"clickid": "x", "goal": "reg"})
    client.get(incoming_url(spot), {"clickid": "nobody-yet", "goal": "reg"})
    after = scrape(client)
    name = "tracker_incoming_postbacks_total"
    unknown = {"spot": "unknown", "outcome": "rejected"}
    assert read(after, name, **unknown) - read(before, name, **unknown) == 1
    waiting = {"spot": spot.slug, "outcome": "unmatched"}
    assert read(after, name, **waiting) - read(before, name, **waiting) == 1


def test_outcomes_of_attempts_are_the_six_words():
    from postbacks.delivery.sender import Result

    cases = [
        (Result(status=200), True, "success"),
        (Result(status=404), False, "http_4xx"),
        (Result(status=502), False, "http_5xx"),
        (Result(status=302), False, "refused"),
        (Result(error_class="ConnectionError"), False, "refused"),
        (Result(error_class="Timeout"), False, "timeout"),
        (Result(error_class="ReadTimeout"), False, "timeout"),
        (Result(error_class="BlockedAddress"), False, "blocked"),
    ]
    assert [metrics.outcome_of(r, ok) for r, ok, _ in cases] == [w for _, _, w in cases]


# -- the backlog ---------------------------------------------------------------------


@pytest.mark.usefixtures("outgoing")
def test_the_backlog_gauges_are_read_from_the_database_at_most_every_few_seconds(
    client, spot, token, receiver
):
    OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    OutgoingPostback.objects.create(spot=spot, name="Off", url=receiver.url + "/x", enabled=False)
    lead = Client.objects.create(spot=spot, name="c", advert_pixel="px")
    client.get(incoming_url(spot), {"clickid": lead.click_id, "goal": "reg"})
    client.get(incoming_url(spot), {"clickid": "nobody-yet", "goal": "reg"})
    send_due()  # the switched-off postback's delivery is held
    receiver.requests.clear()
    waiting = Delivery.objects.filter(postback__name="Own")
    waiting.update(status=Delivery.PENDING, next_attempt=None, created=timezone.now() - HOUR * 2)
    found = scrape(client)
    assert read(found, "tracker_deliveries_pending") == 1
    assert read(found, "tracker_deliveries_held") == 1
    assert read(found, "tracker_deliveries_due") == 1
    assert read(found, "tracker_deliveries_oldest_due_age_seconds") > 3600
    assert read(found, "tracker_outgoing_postbacks_disabled") == 1
    assert read(found, "tracker_incoming_postbacks_unmatched") == 1
    assert IncomingPostback.objects.filter(status="unmatched").count() == 1

    send_due()  # delivered: the next reading says 0, but not before GAUGE_SECONDS
    assert read(scrape(client), "tracker_deliveries_pending") == 1
    metrics._reading["at"] -= metrics.GAUGE_SECONDS
    assert read(scrape(client), "tracker_deliveries_pending") == 0


# -- two gunicorn workers ------------------------------------------------------------


@pytest.fixture
def shared_db(transactional_db):
    if connection.vendor == "sqlite" and not connection.settings_dict["NAME"].startswith("/"):
        pytest.skip("gunicorn's processes need a database file they can open")


def database_url():
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )


@pytest.fixture
def gunicorn(shared_db, tmp_path):
    """`gunicorn -c gunicorn.conf.py tracker.wsgi` with two workers on the test
    database, in the embedded mode (each worker runs a delivery loop)."""
    port = free_port()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999999.db").write_bytes(b"")  # a gone process's: emptied on start
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)},
        "DJANGO_SETTINGS_MODULE": "tracker.settings",
        "DATABASE_URL": database_url(),
        "DATABASE_POOL": "false",
        "SECRET_KEY": "test-gunicorn",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "POSTBACKS_ALLOWED_NETWORKS": "127.0.0.1/32",
        "POSTBACKS_EMBEDDED_POLL": "0.1",
        "ECB_FETCH": "false",
        "SPEND_IMPORT_INTERVAL": "0",
    }
    base = f"http://127.0.0.1:{port}"

    def answers():
        try:
            return requests.get(base + "/healthz", timeout=2).status_code < 500
        except requests.RequestException:
            return False

    with serving(env, tmp_path / "gunicorn.log", answers):
        yield base, folder


def pids_of(folder, kind="counter"):
    return {p.stem.rsplit("_", 1)[-1] for p in folder.glob(f"{kind}_*.db")}


def test_counters_add_up_over_two_gunicorn_workers(gunicorn, spot, receiver, settings):
    base, folder = gunicorn
    assert "999999999" not in pids_of(folder)  # a previous run's counts are gone
    pb = OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    pb.goals.set([spot.goals.get(token="dep")])
    leads = [Client.objects.create(spot=spot, name=f"c{k}", advert_pixel="px") for k in range(3)]
    receiver.reply(500)
    paths = [
        f"{incoming_url(spot)}?clickid={lead.click_id}&goal={event}"
        for lead, event in zip(leads, ["reg", "reg", "dep"], strict=True)
    ]
    # The first request is held half-written: the worker that took it waits for
    # the rest, so the next two go to the other worker.
    held = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10)
    held.sendall(f"GET {paths[0]} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
    time.sleep(0.5)
    for path in paths[1:]:
        assert requests.get(base + path, timeout=10).status_code == 200
    held.sendall(b"Connection: close\r\n\r\n")
    assert held.recv(100).startswith(b"HTTP/1.1 200")
    held.close()
    assert len(receiver.wait_for(1, timeout=10)) == 1  # the one failing delivery

    def counts():
        answer = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200, answer.text
        return samples(answer.text)

    deadline = time.monotonic() + 10
    while True:  # its attempt is counted once judged, a moment after it was received
        found = counts()
        failed = read(found, "tracker_deliveries_total", kind="postback", outcome="http_5xx")
        if failed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    incoming = read(found, "tracker_incoming_postbacks_total", spot=spot.slug, outcome="accepted")
    assert (incoming, failed) == (3, 1)
    assert len(pids_of(folder)) == 2  # both workers counted
    assert requests.get(base + "/metrics", timeout=10).status_code == 401

"""What one request costs the database, counted so it cannot creep back.

Counts include the savepoints the test's own transaction turns BEGIN and
COMMIT into.
"""

import pytest

from crm.models import Client, CustomField
from postbacks.models import OutgoingPostback


@pytest.fixture
def incoming(client, spot, lead):
    OutgoingPostback.objects.create(spot=spot, name="Tracker", url="https://t.example/?t={tid}")
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"

    def post(tid, **extra):
        params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "5"}
        answer = client.get(url, {**params, "tracker.tid": tid, **extra})
        assert answer.status_code in (200, 202), answer.content
        return answer.json()

    post("t-0")  # the first deposit: later ones are repeat deposits
    return post


def test_a_new_conversion_with_its_delivery_takes_twelve_queries(
    incoming, django_assert_max_num_queries
):
    # Raw row; spot, its goals, the client locked, its deciding conversions;
    # the conversion, its rollup rows, the postbacks, the pixels (the goal names
    # their events), the deliveries; the system message and the field values
    # its macros may name; the outcome.
    with django_assert_max_num_queries(15):
        assert incoming("t-1")["status"] == "accepted"


def test_custom_fields_add_two_queries_however_many(incoming, spot, django_assert_max_num_queries):
    for key in ("a", "b", "c"):
        CustomField.objects.create(spot=spot, key=key, label=key, type="text")
    with django_assert_max_num_queries(17):
        answer = incoming("t-2", **{"fields.a": "1", "fields.b": "2", "fields.c": "3"})
    assert answer["status"] == "accepted" and answer["warnings"] == []


def test_a_duplicate_takes_eight_queries(incoming, django_assert_max_num_queries):
    incoming("t-3")
    with django_assert_max_num_queries(8):
        assert incoming("t-3")["status"] == "duplicate"


def test_an_unmatched_postback_takes_seven_queries(client, spot, django_assert_max_num_queries):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    # The first one reads the spot for the web's checks (with its goals and
    # partners; kept for the next ones), and again afresh to decide, and marks
    # it as having postbacks that wait for a client.
    with django_assert_max_num_queries(11):
        answer = client.get(url, {"clickid": "nobody", "tracker.event": "reg"})
    assert answer.json()["status"] == "unmatched"
    with django_assert_max_num_queries(7):
        answer = client.get(url, {"clickid": "nobody-2", "tracker.event": "reg"})
    assert answer.json()["status"] == "unmatched"


def test_a_click_takes_one_query_once_its_spot_is_kept(client, spot, django_assert_num_queries):
    spot.target_url = "https://land.example/?c={{tracker.clickid}}"
    spot.save()
    with django_assert_num_queries(2):  # the spot, read once per process; the client
        client.get("/go/casino-bot", {"advert__campaign_id": "c0"})
    with django_assert_num_queries(1):  # counted and sent by the workers (incoming/settling.py)
        answer = client.get("/go/casino-bot", {"advert__campaign_id": "c1", "fbclid": "f"})
    assert answer.status_code == 302
    assert Client.objects.get(params__fbclid="f").advert_campaign_id == "c1"

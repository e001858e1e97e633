"""What a repeat of a tid does, per goal, when its status is unchanged:
ignored (a duplicate), the amount updated, or added (issue 28, point 4)."""

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from crm.models import Conversion
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def source(spot, receiver):
    url = receiver.url + "/pb?sum={sum}&was={previous_sum}&s={status}"
    return OutgoingPostback.objects.create(spot=spot, name="source", url=url)


def send(client, spot, lead, amount, status="approved"):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "dep", "tracker.tid": "t1"}
    answer = client.get(url, params | {"tracker.cost": amount, "tracker.status": status})
    assert answer.status_code == 200, answer.content
    drain()
    return answer.json()["status"]


def mode(spot, value):
    spot.goals.filter(token="dep").update(repeat_mode=value)


def sums(receiver):
    got = [parse_qs(urlsplit(r.path).query, keep_blank_values=True) for r in receiver.requests]
    return [(q["sum"][0], q["was"][0]) for q in got]


def test_ignore_keeps_the_first_amount_and_says_so(client, spot, lead, receiver, source):
    mode(spot, "ignore")
    send(client, spot, lead, "50")
    assert send(client, spot, lead, "40") == "duplicate"
    assert Conversion.objects.get().amount == Decimal("50")
    row = IncomingPostback.objects.order_by("id").last()
    assert "The same tid with another amount (40.00, kept 50.00): ignored" in row.warnings
    assert sums(receiver) == [("50.00", "")]


def test_update_replaces_the_amount(client, spot, lead, receiver, source):
    mode(spot, "update")
    send(client, spot, lead, "50")
    assert send(client, spot, lead, "40") == "updated"
    assert send(client, spot, lead, "40") == "duplicate"
    assert Conversion.objects.get().amount == Decimal("40")
    assert sums(receiver) == [("50.00", ""), ("40.00", "50.00")]
    mode(spot, "ignore")  # the goal's mode as it is when the repeat comes
    assert send(client, spot, lead, "30") == "duplicate"
    assert Conversion.objects.get().amount == Decimal("40")


def test_add_sums_each_payout_of_the_transaction(client, spot, lead, receiver, source):
    mode(spot, "add")
    send(client, spot, lead, "50")
    assert send(client, spot, lead, "30") == "updated"
    assert send(client, spot, lead, "20") == "updated"
    assert Conversion.objects.get().amount == Decimal("100")
    assert sums(receiver) == [("50.00", ""), ("80.00", "50.00"), ("100.00", "80.00")]
    assert Delivery.objects.filter(postback=source).count() == 3


def test_a_new_status_takes_its_amount_in_every_mode(client, spot, lead, source):
    mode(spot, "add")
    send(client, spot, lead, "50", status="pending")
    assert send(client, spot, lead, "50", status="approved") == "updated"
    assert Conversion.objects.get().amount == Decimal("50")  # approved, not doubled


def test_the_goals_inline_offers_the_mode(admin_client, spot):
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk]))
    assert 'name="goals-0-repeat_mode"' in page.content.decode()

"""{previous_sum} keeps the 8 decimal places amounts have everywhere else
(issue 23, point 4): a crypto payout changed is reported with what it was."""

from urllib.parse import parse_qs, urlsplit

import pytest

from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")


def sale(client, spot, lead, amount):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.tid": "t1"}
    answer = client.get(url, params | {"tracker.cost": amount})
    assert answer.status_code == 200, answer.content
    drain()


def test_the_previous_sum_keeps_eight_places(client, spot, lead, receiver):
    OutgoingPostback.objects.create(
        spot=spot, name="every", url=receiver.url + "/pb?sum={sum}&was={previous_sum}"
    )
    sale(client, spot, lead, "10.12345678")
    sale(client, spot, lead, "20")
    got = [parse_qs(urlsplit(r.path).query, keep_blank_values=True) for r in receiver.wait_for(2)]
    assert got == [
        {"sum": ["10.12345678"], "was": [""]},
        {"sum": ["20.00"], "was": ["10.12345678"]},
    ]
    change = Delivery.objects.exclude(previous_amount=None).get()
    assert str(change.previous_amount.normalize()) == "10.12345678"

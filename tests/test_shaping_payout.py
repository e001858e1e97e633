"""Payout share: {sum} is N% of the amount, rounded as the currency is paid,
{sum_original} the amount as it came; pixels are told the shared value too
(issue 28, point 2)."""

import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from postbacks.delivery.fanout import accept
from postbacks.models import OutgoingPostback
from tests.receiver import drain, form_fields
from tracker import shaping
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

REPORT = "/pb?sum={sum}&orig={sum_original}&payout={Payout}&original={OriginalAmount}"


def query(receiver):
    [got] = receiver.requests
    receiver.requests.clear()
    return {k: v[0] for k, v in parse_qs(urlsplit(got.path).query).items()}


@pytest.fixture
def source(spot, receiver):
    return OutgoingPostback.objects.create(
        spot=spot, name="source", url=receiver.url + REPORT, payout_share=70
    )


def test_seventy_percent_of_fifty_is_sent_as_thirty_five(lead, receiver, source):
    accept(lead, "dep", amount=50, currency="USD", tid="t1")
    drain()
    assert query(receiver) == {
        "sum": "35.00",
        "orig": "50.00",
        "payout": "35.00",
        "original": "50.00",
    }


def test_yen_has_no_cents_and_dinars_have_three_places(lead, receiver, source):
    accept(lead, "dep", amount=999, currency="JPY", tid="t1")
    drain()
    assert query(receiver)["sum"] == "699"  # 699.3 yen cannot be paid
    accept(lead, "redep", amount=Decimal("1.2345"), currency="KWD", tid="t2")
    drain()
    assert query(receiver)["sum"] == "0.864"  # 0.86415
    assert shaping.share_of(1005, 50, "JPY") == Decimal("503")  # half up


def test_a_status_change_sends_both_amounts_shared(spot, lead, receiver, source):
    source.url = receiver.url + "/pb?sum={sum}&was={previous_sum}"
    source.save()
    spot.goals.filter(token="dep").update(repeat_mode="update")
    accept(lead, "dep", amount=50, tid="t1")
    accept(lead, "dep", amount=20, tid="t1")
    drain()
    last = parse_qs(urlsplit(receiver.requests[-1].path).query)
    assert (last["sum"], last["was"]) == (["14.00"], ["35.00"])


def test_a_pixel_is_told_the_shared_value(spot, lead, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="dep").update(facebook_event="Purchase", tiktok_event="Pay")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", payout_share=70)
    Pixel.objects.create(spot=spot, network="tiktok", pixel_id="2", payout_share=150)
    accept(lead, "dep", amount=50, currency="USD", tid="t1")
    drain()
    values = {}
    for request in receiver.requests:
        if request.path.startswith("/v18.0/"):
            [event] = json.loads(form_fields(request.body)["data"][0])
            values["facebook"] = event["custom_data"]["value"]
        else:
            values["tiktok"] = json.loads(request.body)["data"][0]["properties"]["value"]
    assert values == {"facebook": 35.0, "tiktok": 75.0}


def test_a_full_share_sends_the_amount_untouched(lead, receiver, source):
    source.payout_share = 100
    source.save()
    accept(lead, "dep", amount=Decimal("0.00012345"), currency="USD", tid="t1")
    drain()
    assert query(receiver)["sum"] == "0.00012345"

"""Each delivery carries its event's own values, fixed when the event happened
(issue 23, point 2): amount, currency, status, what they were before, and
the time, whatever happens to the conversion before it goes out."""

import datetime
import json
import time
from decimal import Decimal

import pytest

from crm.models import Conversion
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.applying import applying_receiver  # noqa: F401 - the `applying` fixture
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

REPORT = (
    "/pb?c={conversion_id}&s={status}&was={previous_status}&sum={sum}&was_sum={previous_sum}"
    "&cur={currency}&at={now}"
)


def partner(spot, applying, **options):
    return OutgoingPostback.objects.create(
        spot=spot, name="partner", url=applying.url + REPORT, **options
    )


def test_a_delayed_amount_change_sends_its_own_amounts(spot, lead, applying):
    partner(spot, applying, min_delay=datetime.timedelta(seconds=2))
    before = time.time()
    for amount in (10, 20, 30):
        accept(lead, "dep", tid="t1", amount=amount)
    drain(timeout=10)
    got = [(q["sum"], q["was_sum"]) for _, q in applying.applied]
    assert got == [("10.00", ""), ("20.00", "10.00"), ("30.00", "20.00")]
    # {now} is when each event happened, not when the delay let it go.
    assert all(int(q["at"]) <= int(before) + 1 for _, q in applying.applied)
    assert all(at - applying.arrived[0][0] < 1 for at, _ in applying.arrived)


def test_a_change_to_the_conversion_after_the_event_is_not_sent_with_it(spot, lead, applying):
    partner(spot, applying, min_delay=datetime.timedelta(seconds=1))
    conversion, _, [made] = accept(lead, "dep", tid="t1", amount=Decimal("12.5"), currency="EUR")
    # Revalued or mended later, without an event of its own.
    Conversion.objects.filter(pk=conversion.pk).update(amount=99, currency="GBP", status="pending")
    drain(timeout=10)
    [(_, query)] = applying.applied
    assert (query["s"], query["sum"], query["cur"]) == ("approved", "12.50", "EUR")
    made.refresh_from_db()
    assert (made.event_amount, made.event_currency) == (12.5, "EUR")
    assert int(query["at"]) == int(made.event_time.timestamp())


def test_a_pixel_reports_the_event_as_it_happened(spot, lead, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="dep").update(facebook_event="Purchase")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="token")
    conversion, _, [made] = accept(lead, "dep", tid="t1", amount=70)
    Conversion.objects.filter(pk=conversion.pk).update(
        amount=5, currency="EUR", created=conversion.created - datetime.timedelta(days=3)
    )
    drain()
    [request] = receiver.wait_for(1)
    [event] = json.loads(form_fields(request.body)["data"][0])
    assert event["custom_data"] == {"value": 70.0, "currency": "USD"}
    assert event["event_time"] == int(made.event_time.timestamp())


def test_a_delivery_made_before_values_were_kept_sends_the_conversion_as_it_is(
    spot, lead, applying
):
    partner(spot, applying)
    conversion, _, [made] = accept(lead, "dep", tid="t1", amount=10)
    Delivery.objects.filter(pk=made.pk).update(
        event_amount=None, event_currency="", event_time=None
    )
    Conversion.objects.filter(pk=conversion.pk).update(amount=15)
    before = time.time()
    drain()
    [(_, query)] = applying.applied
    assert (query["sum"], query["cur"]) == ("15.00", "USD")
    assert int(query["at"]) >= int(before)  # the send's time, as before

"""An event older than its network accepts is not sent, and says why (issue
28, point 6): Meta takes events up to 7 days old, TikTok 7 days, GA4 72 hours,
by the delivery's own event time."""

import datetime

import pytest
from django.utils import timezone

from crm.models import Client, Conversion
from postbacks.models import Delivery, DeliveryAttempt
from tests.receiver import drain
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def networks(settings, receiver):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    return receiver


def event(spot, network, age, created_age=None):
    """A pending delivery to the spot's `network` pixel of an event `age` ago."""
    spot.goals.update(**{f"{network}_event": ""})
    spot.goals.filter(token="dep").update(**{f"{network}_event": "purchase"})
    pixel, _ = Pixel.objects.get_or_create(
        spot=spot, network=network, defaults={"pixel_id": "P1", "access_token": "TOKEN1"}
    )
    client = Client.objects.create(spot=spot, name="Ann")
    conversion = Conversion.objects.create(
        spot=spot, client=client, goal=spot.goals.get(token="dep"), amount=10, tid="t"
    )
    now = timezone.now()
    if created_age is not None:
        Conversion.objects.filter(pk=conversion.pk).update(created=now - created_age)
    return Delivery.objects.create(
        conversion=conversion,
        spot=spot,
        pixel=pixel,
        status=Delivery.PENDING,
        next_attempt=now,
        event_time=now - age,
    )


DAY, HOUR = datetime.timedelta(days=1), datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    ("network", "age", "words"),
    [
        ("facebook", 8 * DAY, "8 days old and Facebook Conversions API accepts events up to 7"),
        ("tiktok", 8 * DAY, "8 days old and TikTok Events API accepts events up to 7 days"),
        ("google", 73 * HOUR, "73 hours old and Google Analytics 4"),
    ],
)
def test_an_event_past_the_network_window_is_skipped_with_why(spot, networks, network, age, words):
    d = event(spot, network, age)
    drain()
    assert networks.requests == []
    d.refresh_from_db()
    assert d.status == Delivery.SKIPPED
    assert words in d.last_error and d.last_error.startswith("Not sent: the event is ")
    assert not DeliveryAttempt.objects.filter(delivery=d).exists()


@pytest.mark.parametrize(
    ("network", "age"), [("facebook", 6 * DAY), ("tiktok", 6 * DAY), ("google", 71 * HOUR)]
)
def test_an_event_within_the_window_is_sent(spot, networks, network, age):
    d = event(spot, network, age)
    drain()
    assert len(networks.requests) == 1
    d.refresh_from_db()
    assert d.status == Delivery.SUCCESS


def test_the_delivery_event_time_counts_not_the_conversion_creation(spot, networks):
    # A conversion made ten days ago whose event (a status change) is today's.
    fresh = event(spot, "facebook", HOUR, created_age=10 * DAY)
    drain()
    fresh.refresh_from_db()
    assert fresh.status == Delivery.SUCCESS
    # And an old event of a conversion made now is still too old.
    old = event(spot, "facebook", 9 * DAY)
    drain()
    old.refresh_from_db()
    assert old.status == Delivery.SKIPPED and "9 days old" in old.last_error


def test_metrica_has_no_window_here(spot, networks):
    d = event(spot, "yandex", 30 * DAY)
    drain()
    d.refresh_from_db()
    assert d.status == Delivery.SUCCESS

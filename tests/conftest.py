import pytest

from crm.models import Client
from tracker.models import Spot
from tracker.presets import load_presets

pytest_plugins = ["tests.browser", "tests.receiver", "tests.team"]


@pytest.fixture
def spot(db):
    # Answered with the outcome, which most tests read; tests/test_incoming_queue.py
    # and others take the default path, queued and decided by the workers.
    return Spot.objects.create(
        name="Casino bot", slug="casino-bot", currency="USD", answer_after_processing=True
    )


@pytest.fixture
def lead(spot):
    return Client.objects.create(spot=spot, name="Ann", cl_id="trk-1", advert_campaign_id="c1")


@pytest.fixture
def presets(db):
    return {p.slug: p for p in load_presets()}

"""crm/rows.py: raw rows read as models, as the ORM reads them."""

import datetime

from crm.models import Conversion
from crm.rows import read_one
from postbacks.delivery.batch import in_bulk
from postbacks.models import Delivery


def test_a_row_read_raw_has_the_values_the_orm_reads(spot, lead):
    goal = spot.goals.get(token="dep")
    made = Conversion.objects.create(spot=spot, client=lead, goal=goal, amount="12.50", tid="t1")
    at = datetime.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=datetime.UTC)
    delivery = Delivery.objects.create(
        conversion=made, spot=spot, status=Delivery.PENDING, event_time=at, next_attempt=at
    )
    orm = Conversion.objects.get(pk=made.pk)
    raw = read_one(Conversion, "tid", "t1")
    for name in ("created", "updated", "amount", "currency", "status", "client_id", "goal_id"):
        assert getattr(raw, name) == getattr(orm, name), name
    # Aware datetimes in UTC, as the ORM gives them with USE_TZ (SQLite stores naive text).
    assert raw.created.utcoffset() == datetime.timedelta(0)
    loaded = in_bulk(Delivery, [delivery.pk])[delivery.pk]
    assert loaded.event_time == at and loaded.event_time.utcoffset() == datetime.timedelta(0)
    assert loaded.retry_until is None

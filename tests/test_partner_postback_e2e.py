"""A preset's postback URL, called as the partner calls it, records the conversion.

Written against the incoming endpoint's contract (DESIGN.md, issue of the
endpoint): GET /api/postbacks/<token>/tracker-postback with clickid,
tracker.event, tracker.cost, tracker.currency, tracker.tid, status,
fields.<key> and partner=<slug>.
"""

from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from crm.models import Conversion, CustomField
from tracker.models import PartnerPreset
from tracker.presets import apply_preset, load_presets


def fill(url, values):
    """What the partner does: replace its own macros in the URL we gave it."""
    for name, value in values.items():
        url = url.replace("{" + name + "}", value)
    return url


@pytest.fixture
def one_win(spot):
    load_presets()
    for key in ("user_id", "country", "last_deposit"):
        CustomField.objects.create(spot=spot, key=key)
    return apply_preset(PartnerPreset.objects.get(slug="1win"), spot)


def call(client, url):
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_a_preset_registration_url_records_the_reg_and_the_fields(client, one_win, lead):
    url = one_win.postbacks.get(name="Registration").incoming_url()
    response = call(client, fill(url, {"sub4": lead.click_id, "user_id": "777", "country": "BR"}))
    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get(client=lead)
    assert conversion.goal.token == "reg"
    assert lead.field_values() == {"user_id": "777", "country": "BR"}


def test_preset_deposit_urls_record_dep_then_redep_with_amounts(client, one_win, lead):
    first = one_win.postbacks.get(name="First Deposit").incoming_url()
    repeat = one_win.postbacks.get(name="Recurring Deposit").incoming_url()
    values = {"sub4": lead.click_id, "amount": "50.5", "currency": "EUR", "user_id": "777"}
    assert call(client, fill(first, {**values, "event_id": "e1"})).status_code == 200
    assert (
        call(client, fill(repeat, {**values, "amount": "20", "event_id": "e2"})).status_code == 200
    )
    rows = list(Conversion.objects.filter(client=lead).order_by("id"))
    assert [(c.goal.token, c.amount, c.currency, c.tid) for c in rows] == [
        ("dep", Decimal("50.50"), "EUR", "e1"),
        ("redep", Decimal("20.00"), "EUR", "e2"),
    ]
    assert lead.field_values()["last_deposit"] == "20"


def test_a_partners_status_word_is_mapped_by_its_preset(client, spot, lead):
    load_presets()
    binom = apply_preset(PartnerPreset.objects.get(slug="binom"), spot)
    url = binom.postbacks.get(name="First Deposit").incoming_url()
    filled = fill(url, {"clickid": lead.click_id, "payout": "30", "txid": "t9", "status": "hold"})
    response = call(client, filled)
    assert response.status_code == 200
    assert response.content == b"OK"
    assert Conversion.objects.get(client=lead).status == "pending"

import json
import logging
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.models import Client, DailyStat, ExchangeRate, Spend
from postbacks.loops import intake


@pytest.fixture
def landing(spot):
    spot.target_url = "https://land.example.com/offer?c={{tracker.clickid}}"
    spot.save()
    return spot


def go(client, path):
    """A click, and the workers' pass that settles it (and adds its cost)."""
    answer = client.get(path)
    intake.decide_all()
    return answer


def cost(basis="conversion", grain="*", campaign="c1", geo="DE"):
    """The cost and cost_unrated of the click spend's leads row (manager 0)."""
    row = DailyStat.objects.get(
        grain=grain,
        basis=basis,
        day=timezone.localdate(),
        goal_pk=0,
        campaign=campaign if grain in ("*", "c", "cg") else "",
        geo=geo if grain in ("*", "g", "cg") else "",
        manager_pk=0,
    )
    return row.cost, row.cost_unrated


def test_a_click_with_cost_shows_as_cost_on_both_bases_and_every_grain(client, landing):
    answer = go(client, "/go/casino-bot?advert__campaign_id=c1&geo=de&cost=0.05")
    assert answer.status_code == 302
    row = Spend.objects.get()
    assert (row.source, row.campaign, row.geo, row.amount, row.currency) == (
        "click",
        "c1",
        "DE",
        Decimal("0.05"),
        "USD",
    )
    assert row.reported_amount == Decimal("0.05")
    for basis in ("conversion", "click"):
        for grain in ("*", "", "c", "g", "cg"):
            assert cost(basis, grain) == (Decimal("0.05"), 0), (basis, grain)


def test_clicks_of_one_key_add_up_in_one_row(client, landing):
    for _ in range(3):
        go(client, "/go/casino-bot?advert__campaign_id=c1&geo=DE&cost=0.05")
    assert Spend.objects.get().amount == Decimal("0.15")
    assert cost() == (Decimal("0.15"), 0)
    assert DailyStat.objects.get(grain="*", basis="click", goal_pk=0, campaign="c1").count == 3


def test_a_cost_in_another_currency_is_valued_at_its_rate(client, landing, settings):
    ExchangeRate.objects.create(day=timezone.localdate(), currency="EUR", rate=Decimal("0.5"))
    go(client, "/go/casino-bot?advert__campaign_id=c1&geo=DE&cost=1&cost_currency=eur")
    row = Spend.objects.get()
    assert (row.amount, row.currency, row.reported_amount) == (Decimal("1"), "EUR", Decimal("2"))
    assert cost() == (Decimal("2"), 0)


def test_a_cost_without_a_rate_is_counted_as_unrated(client, landing):
    go(client, "/go/casino-bot?advert__campaign_id=c1&geo=DE&cost=1&cost_currency=GBP")
    go(client, "/go/casino-bot?advert__campaign_id=c1&geo=DE&cost=2&cost_currency=GBP")
    row = Spend.objects.get()
    assert (row.amount, row.reported_amount) == (Decimal("3"), None)
    assert cost() == (Decimal("0"), 1)


def test_the_spots_own_parameter_names_are_read(client, landing):
    landing.cost_param, landing.cost_currency_param = "cpc", "cur"
    landing.save()
    go(client, "/go/casino-bot?advert__campaign_id=c1&geo=DE&cost=9&cpc=0.2&cur=USD")
    assert Spend.objects.get().amount == Decimal("0.2")


@pytest.mark.parametrize("bad", ["abc", "-0.05", "1e5", "0.05&cost_currency=dollars"])
def test_a_bad_cost_is_left_out_and_the_click_still_counts(client, landing, caplog, bad):
    with caplog.at_level(logging.WARNING, logger="crm.spend"):
        answer = go(client, f"/go/casino-bot?advert__campaign_id=c1&geo=DE&cost={bad}")
    assert answer.status_code == 302
    assert Client.objects.count() == 1
    assert not Spend.objects.exists()
    assert "cost left out" in caplog.text
    assert not DailyStat.objects.exclude(cost=0).exists()


def test_a_bot_registration_carries_its_click_cost_once(client, spot):
    body = json.dumps(
        {"user_id": 7, "geo": "de", "advert": {"campaign_id": "c1"}, "params": {"cost": 0.05}}
    )
    for _ in range(2):  # the bot sends twice: one client, one click's cost
        answer = client.post(
            "/api/clients", body, content_type="application/json", HTTP_X_API_KEY=spot.api_key
        )
        assert answer.status_code in (200, 201)
    assert Spend.objects.get().amount == Decimal("0.05")
    assert cost() == (Decimal("0.05"), 0)

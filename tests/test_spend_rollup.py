import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from crm import spend
from crm.models import Client, DailyStat, ExchangeRate, Spend

DAY = datetime.date(2026, 3, 2)


def costs():
    """{(grain, basis, day, campaign, adset, ad, geo): (cost, cost_unrated)} of rows with cost."""
    return {
        (s.grain, s.basis, s.day, s.campaign, s.adset, s.ad, s.geo): (s.cost, s.cost_unrated)
        for s in DailyStat.objects.exclude(cost=0, cost_unrated=0)
    }


def row(campaign, amount, currency="USD", **more):
    return {"campaign": campaign, "amount": Decimal(amount), "currency": currency, **more}


def total(grain="", basis="conversion"):
    return DailyStat.objects.filter(grain=grain, basis=basis).aggregate(c=Sum("cost"))["c"]


def test_replace_day_puts_the_days_cost_at_every_grain_on_both_bases(spot):
    rows = [
        row("c1", "10.5", geo="de", adset="s1", ad="a1"),
        row("c2", "4"),
        row("c1", "1", geo="DE", adset="s1", ad="a1"),
    ]
    assert spend.replace_day("file:Ads Manager", spot, DAY, rows) == 2
    found = costs()
    for basis in ("conversion", "click"):
        assert found[("*", basis, DAY, "c1", "s1", "a1", "DE")] == (Decimal("11.5"), 0)
        assert found[("*", basis, DAY, "c2", "", "", "")] == (Decimal("4"), 0)
        assert found[("", basis, DAY, "", "", "", "")] == (Decimal("15.5"), 0)
        assert found[("c", basis, DAY, "c1", "", "", "")] == (Decimal("11.5"), 0)
        assert found[("g", basis, DAY, "", "", "", "DE")] == (Decimal("11.5"), 0)
        assert found[("cg", basis, DAY, "c1", "", "", "DE")] == (Decimal("11.5"), 0)
    assert len(found) == 2 * 9


def test_replacing_a_day_moves_the_cost_exactly_and_never_doubles(spot):
    spend.replace_day("file:x", spot, DAY, [row("c1", "10"), row("c2", "5")])
    spend.replace_day("file:x", spot, DAY, [row("c1", "10"), row("c2", "5")])
    assert total() == Decimal("15")
    spend.replace_day("file:x", spot, DAY, [row("c1", "7.25")])
    assert total() == Decimal("7.25")
    assert costs()[("*", "click", DAY, "c1", "", "", "")] == (Decimal("7.25"), 0)
    assert ("*", "click", DAY, "c2", "", "", "") not in costs()
    assert Spend.objects.count() == 1


def test_each_source_keeps_its_own_rows_of_a_day(spot):
    spend.replace_day("file:x", spot, DAY, [row("c1", "10")])
    spend.replace_day("facebook:1", spot, DAY, [row("c1", "3")])
    spend.replace_day("file:x", spot, DAY, [])
    assert total() == Decimal("3")
    assert list(Spend.objects.values_list("source", flat=True)) == ["facebook:1"]


def test_a_bad_currency_changes_nothing(spot):
    spend.replace_day("file:x", spot, DAY, [row("c1", "10")])
    with pytest.raises(ValueError):
        spend.replace_day("file:x", spot, DAY, [row("c1", "1"), row("c2", "1", currency="dollars")])
    assert total() == Decimal("10")


def test_spend_without_a_rate_is_unrated_until_the_rate_comes(spot):
    spend.replace_day("file:x", spot, DAY, [row("c1", "10", currency="EUR")])
    assert Spend.objects.get().reported_amount is None
    assert costs()[("*", "conversion", DAY, "c1", "", "", "")] == (Decimal("0"), 1)
    ExchangeRate.objects.create(
        day=DAY - datetime.timedelta(days=3), currency="EUR", rate=Decimal("0.8")
    )
    assert spend.revalue_spend("EUR") == 1
    assert Spend.objects.get().reported_amount == Decimal("12.5")
    assert costs()[("*", "conversion", DAY, "c1", "", "", "")] == (Decimal("12.5"), 0)
    assert spend.revalue_spend() == 0  # nothing left to change


def test_rebuild_stats_gives_the_same_cost(spot, capsys):
    Client.objects.create(spot=spot, advert_campaign_id="c1", geo="DE")
    spend.replace_day(
        "file:x", spot, DAY, [row("c1", "10", geo="DE"), row("c3", "2", currency="GBP")]
    )
    spend.add_click_cost(spot, DAY, "c1", "", "", "DE", Decimal("0.05"), "USD")
    spend.add_click_cost(spot, DAY, "c1", "", "", "DE", Decimal("0.05"), "USD")
    kept = costs()
    leads = set(
        DailyStat.objects.filter(count__gt=0).values_list(
            "grain", "basis", "day", "campaign", "count"
        )
    )
    assert kept[("*", "click", DAY, "c1", "", "", "DE")] == (Decimal("10.1"), 0)
    assert kept[("", "click", DAY, "", "", "", "")] == (Decimal("10.1"), 1)
    DailyStat.objects.update(cost=0, cost_unrated=0)
    call_command("rebuild_stats")
    assert costs() == kept
    assert (
        set(
            DailyStat.objects.filter(count__gt=0).values_list(
                "grain", "basis", "day", "campaign", "count"
            )
        )
        == leads
    )

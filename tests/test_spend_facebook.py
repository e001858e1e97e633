"""Spend pulled from the Facebook Marketing API's insights, against a stand-in Graph API."""

import csv
import datetime
import io
import json
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from crm import spend_api
from crm.models import DailyStat, Spend
from tests import standin as stand_in
from tracker.models import AdAccount

TODAY = timezone.localdate()
DAY1, DAY2 = TODAY - datetime.timedelta(days=2), TODAY - datetime.timedelta(days=1)
PATH = f"/{spend_api.FACEBOOK_VERSION}/act_123/insights"


@pytest.fixture
def standin():
    """A stand-in of the outside API on 127.0.0.1."""
    yield from stand_in.serve()


def row(day, campaign, ad, spend, currency="USD"):
    return {
        "campaign_id": campaign,
        "campaign_name": f"Campaign {campaign}",
        "adset_id": f"{campaign}-s",
        "adset_name": "Set",
        "ad_id": ad,
        "ad_name": "Ad",
        "spend": spend,
        "account_currency": currency,
        "date_start": day.isoformat(),
        "date_stop": day.isoformat(),
    }


def pages(standin, *answers):
    """Serve `answers` (lists of rows) as pages linked by paging.next."""

    def answer(asked):
        page = int(asked.query.get("after", "0"))
        body = {"data": answers[page], "paging": {"cursors": {"after": "x"}}}
        if page + 1 < len(answers):
            body["paging"]["next"] = (
                f"{standin.url}{PATH}?access_token=s3cret-42&after={page + 1}&limit=2"
            )
        return 200, json.dumps(body), {"Content-Type": "application/json"}

    standin.on(PATH, answer)


@pytest.fixture
def account(spot, standin, settings):
    settings.POSTBACKS_PIXEL_URLS = {**settings.POSTBACKS_PIXEL_URLS, "facebook": standin.url}
    return AdAccount.objects.create(
        spot=spot, network=AdAccount.FACEBOOK, account_id="act_123", access_token="s3cret-42"
    )


def cost(spot, campaign, day=None, basis=DailyStat.CONVERSION):
    rows = DailyStat.objects.filter(grain="c", basis=basis, spot=spot, goal_pk=0, campaign=campaign)
    if day:
        rows = rows.filter(day=day)
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal("0")


def test_two_days_of_two_campaigns_over_two_pages_land_as_spend_and_cost(spot, account, standin):
    pages(
        standin,
        [row(DAY1, "c1", "a1", "10.50"), row(DAY1, "c2", "a2", "4.25")],
        [row(DAY2, "c1", "a1", "12.00"), row(DAY2, "c2", "a2", "0.75")],
    )
    stored = spend_api.import_account(account, DAY1, DAY2)
    assert stored == {DAY1: 2, DAY2: 2}

    first, second = standin.asked
    q = first.query
    assert q["access_token"] == "s3cret-42" and q["level"] == "ad" and q["time_increment"] == "1"
    assert json.loads(q["time_range"]) == {"since": DAY1.isoformat(), "until": DAY2.isoformat()}
    assert {"spend", "campaign_name", "adset_name", "ad_name", "account_currency"} <= set(
        q["fields"].split(",")
    )
    assert second.query["after"] == "1"  # the next link was followed as given

    got = sorted(Spend.objects.values_list("source", "day", "campaign", "adset", "ad", "amount"))
    assert got == [
        ("facebook:123", DAY1, "c1", "c1-s", "a1", Decimal("10.5")),
        ("facebook:123", DAY1, "c2", "c2-s", "a2", Decimal("4.25")),
        ("facebook:123", DAY2, "c1", "c1-s", "a1", Decimal("12")),
        ("facebook:123", DAY2, "c2", "c2-s", "a2", Decimal("0.75")),
    ]
    assert cost(spot, "c1", DAY1) == Decimal("10.5")
    assert cost(spot, "c1") == Decimal("22.5") and cost(spot, "c2") == Decimal("5")
    # Cost belongs to its day on the click basis too.
    assert cost(spot, "c2", basis=DailyStat.CLICK) == Decimal("5")
    account.refresh_from_db()
    assert account.last_imported and account.last_error == ""


def test_importing_the_same_days_again_keeps_one_figure(spot, account, standin):
    pages(standin, [row(DAY1, "c1", "a1", "10"), row(DAY2, "c1", "a1", "3")])
    spend_api.import_account(account, DAY1, DAY2)
    # The network corrected day 2; day 1 is reported again unchanged.
    pages(standin, [row(DAY1, "c1", "a1", "10"), row(DAY2, "c1", "a1", "5")])
    spend_api.import_account(account, DAY1, DAY2)
    assert Spend.objects.count() == 2
    assert Spend.objects.get(day=DAY2).amount == Decimal("5")
    assert cost(spot, "c1", DAY1) == Decimal("10") and cost(spot, "c1", DAY2) == Decimal("5")
    # A day with no spend any more is emptied, not left as it was.
    pages(standin, [row(DAY1, "c1", "a1", "10")])
    spend_api.import_account(account, DAY1, DAY2)
    assert cost(spot, "c1", DAY2) == Decimal("0")
    assert list(Spend.objects.values_list("day", flat=True)) == [DAY1]


def test_the_account_id_without_act_is_the_same_source(spot, account, standin):
    pages(standin, [row(DAY1, "c1", "a1", "10")])
    spend_api.import_account(account, DAY1, DAY1)
    account.account_id = "123"
    spend_api.import_account(account, DAY1, DAY1)
    assert Spend.objects.count() == 1 and cost(spot, "c1") == Decimal("10")


def test_an_expired_token_and_a_refused_request_are_told_on_the_account(account, standin):
    expired = {
        "error": {
            "message": "Error validating access token: Session has expired.",
            "type": "OAuthException",
            "code": 190,
        }
    }
    standin.answer(PATH, 400, json.dumps(expired))
    with pytest.raises(spend_api.ApiError, match="no longer works"):
        spend_api.import_account(account, DAY1, DAY2)
    account.refresh_from_db()
    assert "Session has expired" in account.last_error and account.last_imported
    assert "s3cret" not in account.last_error

    bad = {"error": {"message": "(#100) time_range is invalid", "code": 100}}
    standin.answer(PATH, 400, json.dumps(bad))
    with pytest.raises(spend_api.ApiError):
        spend_api.import_account(account, DAY1, DAY2)
    account.refresh_from_db()
    assert account.last_error == "HTTP 400: (#100) time_range is invalid"
    assert not Spend.objects.exists()

    # Working again: the error goes.
    pages(standin, [row(DAY1, "c1", "a1", "1")])
    spend_api.import_account(account, DAY1, DAY2)
    account.refresh_from_db()
    assert account.last_error == ""


def test_a_foreign_currency_is_kept_and_valued_when_its_rate_comes(spot, account, standin):
    from crm.models import ExchangeRate

    ExchangeRate.objects.create(day=DAY1, currency="EUR", rate=Decimal("0.8"))
    pages(standin, [row(DAY1, "c1", "a1", "8", "EUR")])
    spend_api.import_account(account, DAY1, DAY1)
    spend = Spend.objects.get()
    assert (spend.amount, spend.currency, spend.reported_amount) == (
        Decimal("8"),
        "EUR",
        Decimal("10"),
    )
    assert cost(spot, "c1") == Decimal("10")


def test_the_report_shows_the_pulled_cost_with_profit_and_roi(spot, account, standin, admin_client):
    from crm.models import Client

    pages(standin, [row(DAY1, "c1", "a1", "10.00"), row(DAY2, "c1", "a1", "15.00")])
    spend_api.import_account(account, DAY1, DAY2)
    buyer = Client.objects.create(spot=spot, advert_campaign_id="c1")
    buyer.record_conversion("dep", Decimal("50"), "USD", tid="d1")

    query = f"group=campaign&date_from={DAY1}&date_to={TODAY}"
    text = admin_client.get(f"/admin/crm/dailystat/csv/?{query}").content.decode()
    header, *lines = list(csv.reader(io.StringIO(text)))
    by = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert by["c1"]["Cost (USD)"] == "25" and by["c1"]["Profit (USD)"] == "25"
    assert by["c1"]["ROI (%)"] == "100"

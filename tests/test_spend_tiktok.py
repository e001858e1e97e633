"""Spend pulled from the TikTok Business API's reports, against a stand-in API."""

import datetime
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
DAY1, DAY2 = TODAY - datetime.timedelta(days=1), TODAY
PATH = "/open_api/v1.3/report/integrated/get/"


@pytest.fixture
def standin():
    """A stand-in of the outside API on 127.0.0.1."""
    yield from stand_in.serve()


def item(day, campaign, ad, spend):
    return {
        "dimensions": {"ad_id": ad, "stat_time_day": f"{day.isoformat()} 00:00:00"},
        "metrics": {
            "spend": spend,
            "campaign_id": campaign,
            "campaign_name": f"Campaign {campaign}",
            "adgroup_id": f"{campaign}-g",
            "adgroup_name": "Group",
            "ad_name": "Ad",
            "currency": "USD",
        },
    }


def report(standin, *pages):
    def answer(asked):
        page = int(asked.query["page"])
        body = {
            "code": 0,
            "message": "OK",
            "data": {
                "list": pages[page - 1],
                "page_info": {"page": page, "total_page": len(pages), "page_size": 1000},
            },
        }
        return 200, json.dumps(body), {"Content-Type": "application/json"}

    standin.on(PATH, answer)


@pytest.fixture
def account(spot, standin, settings):
    settings.POSTBACKS_PIXEL_URLS = {**settings.POSTBACKS_PIXEL_URLS, "tiktok": standin.url}
    return AdAccount.objects.create(
        spot=spot, network=AdAccount.TIKTOK, account_id="7001", access_token="tt-s3cret"
    )


def cost(spot, campaign):
    rows = DailyStat.objects.filter(
        grain="c", basis=DailyStat.CONVERSION, spot=spot, goal_pk=0, campaign=campaign
    )
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal("0")


def test_a_report_of_two_pages_lands_as_spend_per_ad_and_day(spot, account, standin):
    report(
        standin,
        [item(DAY1, "c1", "a1", "3.10"), item(DAY1, "c2", "a2", "2.00")],
        [item(DAY2, "c1", "a1", "1.90")],
    )
    assert spend_api.import_account(account, DAY1, DAY2) == {DAY1: 2, DAY2: 1}

    first, second = standin.asked
    q = first.query
    assert first.headers["Access-Token"] == "tt-s3cret" and "tt-s3cret" not in json.dumps(q)
    assert (q["advertiser_id"], q["report_type"], q["data_level"]) == (
        "7001",
        "BASIC",
        "AUCTION_AD",
    )
    assert json.loads(q["dimensions"]) == ["ad_id", "stat_time_day"]
    assert {"spend", "campaign_name", "adgroup_name", "ad_name", "currency"} <= set(
        json.loads(q["metrics"])
    )
    assert (q["start_date"], q["end_date"], q["page"]) == (DAY1.isoformat(), TODAY.isoformat(), "1")
    assert second.query["page"] == "2"

    got = sorted(Spend.objects.values_list("source", "day", "campaign", "adset", "ad", "amount"))
    assert got == [
        ("tiktok:7001", DAY1, "c1", "c1-g", "a1", Decimal("3.1")),
        ("tiktok:7001", DAY1, "c2", "c2-g", "a2", Decimal("2")),
        ("tiktok:7001", DAY2, "c1", "c1-g", "a1", Decimal("1.9")),
    ]
    assert cost(spot, "c1") == Decimal("5") and cost(spot, "c2") == Decimal("2")

    # Pulled again with a corrected figure: one figure per day, the new one.
    report(standin, [item(DAY1, "c1", "a1", "4"), item(DAY1, "c2", "a2", "2.00")])
    spend_api.import_account(account, DAY1, DAY2)
    assert cost(spot, "c1") == Decimal("4") and Spend.objects.count() == 2


def test_a_long_range_is_asked_in_parts_of_thirty_days(spot, account, standin):
    report(standin, [])
    since = TODAY - datetime.timedelta(days=44)
    spend_api.import_account(account, since, TODAY)
    ranges = [(a.query["start_date"], a.query["end_date"]) for a in standin.asked]
    assert ranges == [
        (since.isoformat(), (since + datetime.timedelta(days=29)).isoformat()),
        ((since + datetime.timedelta(days=30)).isoformat(), TODAY.isoformat()),
    ]


def test_an_expired_token_is_told_on_the_account(account, standin):
    body = {"code": 40105, "message": "Access token is expired.", "data": {}}
    standin.answer(PATH, 200, json.dumps(body))
    with pytest.raises(spend_api.ApiError, match="no longer works"):
        spend_api.import_account(account, DAY1, DAY2)
    account.refresh_from_db()
    assert "Access token is expired." in account.last_error
    standin.answer(PATH, 400, json.dumps({"code": 40002, "message": "start_date is invalid"}))
    with pytest.raises(spend_api.ApiError):
        spend_api.import_account(account, DAY1, DAY2)
    account.refresh_from_db()
    assert account.last_error == "HTTP 400: start_date is invalid"
    assert not Spend.objects.exists()

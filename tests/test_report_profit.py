"""Cost, profit, ROI, CPA and EPC on the statistics page and in its CSV, from
spend written the one way spend is written (crm.spend.replace_day)."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from crm import report, spend
from crm.models import Client


@pytest.fixture
def campaigns(spot):
    """c1: 4 leads, 2 regs, a 100 USD deposit, 40 USD spent; c2: 2 leads, 60 USD spent."""
    spot.goals.filter(token="dep").update(show_sum=True)
    leads = [Client.objects.create(spot=spot, geo="DE", advert_campaign_id="c1") for _ in range(4)]
    leads += [Client.objects.create(spot=spot, geo="BR", advert_campaign_id="c2") for _ in range(2)]
    leads[0].record_conversion("registration")
    leads[1].record_conversion("registration")
    leads[0].record_conversion("sale", Decimal("100"), "USD", "t1")
    today = timezone.localdate()
    spend.replace_day(
        "file:Ads Manager",
        spot,
        today,
        [
            {"campaign": "c1", "adset": "", "ad": "", "geo": "DE", "amount": Decimal("25"),
             "currency": "USD"},
            {"campaign": "c1", "adset": "", "ad": "", "geo": "DE", "amount": Decimal("15"),
             "currency": "USD"},
            {"campaign": "c2", "adset": "", "ad": "", "geo": "BR", "amount": Decimal("60"),
             "currency": "USD"},
        ],
    )  # fmt: skip
    return spot


def page(admin_client, query):
    return admin_client.get(f"/admin/crm/dailystat/?{query}")


def csv_rows(admin_client, query):
    text = admin_client.get(f"/admin/crm/dailystat/csv/?{query}").content.decode()
    header, *lines = list(csv.reader(io.StringIO(text)))
    return [dict(zip(header, line, strict=True)) for line in lines]


def test_the_report_has_cost_profit_roi_cpa_and_epc_per_campaign(campaigns):
    today = timezone.localdate()
    rep = report.build(report.Query(today, today, group=["campaign"]))
    c1, c2 = sorted(rep.rows, key=lambda r: r.keys)
    assert (c1.cost, c1.value("profit"), c1.value("roi")) == (Decimal(40), Decimal(60), 150)
    assert c1.value("epc") == Decimal("25.00")  # 100 over 4 leads (a click is a lead)
    assert c1.value("cpa:reg") == Decimal("20.00") and c1.value("cpa:dep") == Decimal("40.00")
    assert c1.value("cr:reg") == 50 and c1.value("cr:dep") == 25
    assert (c2.cost, c2.value("profit"), c2.value("roi")) == (Decimal(60), Decimal(-60), -100)
    assert c2.value("cpa:dep") is None  # no deposit: no cost per deposit
    assert (rep.total.cost, rep.total.value("profit"), rep.total.value("roi")) == (
        Decimal(100),
        Decimal(0),
        0,
    )


def test_the_page_colours_profit_and_roi_and_totals_them(admin_client, campaigns):
    today = timezone.localdate()
    html = page(admin_client, f"group=campaign&date_from={today}&date_to={today}").content.decode()
    assert '<td class="num gain">60.00</td>' in html  # c1's profit
    assert '<td class="num gain">150.0%</td>' in html
    assert (
        '<td class="num loss">-60.00</td>' in html and '<td class="num loss">-100.0%</td>' in html
    )
    total = html.split('<tr class="total">')[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", td) for td in re.findall(r"<td[^>]*>(.*?)</td>", total)]
    assert cells[0] == "Total" and "100.00" in cells and "0.0%" in cells
    # Revenue against cost per day, and the currency on the page's header.
    assert '<svg id="stats-money-chart"' in html
    assert 'data-label="Revenue (USD)"' in html and 'data-label="Cost (USD)"' in html
    assert 'id="stats-currency"' in html and "in USD" in html


def test_the_csv_has_cost_profit_roi_cpa_and_epc(admin_client, campaigns):
    today = timezone.localdate()
    rows = csv_rows(admin_client, f"group=campaign&date_from={today}&date_to={today}")
    by = {r["Campaign"]: r for r in rows}
    assert by["c1"]["Cost (USD)"] == "40" and by["c1"]["Profit (USD)"] == "60"
    assert by["c1"]["ROI (%)"] == "150" and by["c1"]["EPC (USD)"] == "25"
    assert by["c1"]["First deposit CPA (USD)"] == "40"
    assert by["c1"]["Registration CR (%)"] == "50"
    assert by["c2"]["Profit (USD)"] == "-60" and by["c2"]["ROI (%)"] == "-100"
    assert by["Total"]["Cost (USD)"] == "100" and by["Total"]["ROI (%)"] == "0"


def test_a_day_reimported_keeps_one_figure_and_cost_reads_on_both_bases(campaigns):
    today = timezone.localdate()
    row = {"campaign": "c2", "adset": "", "ad": "", "geo": "BR", "currency": "USD"}
    spend.replace_day("file:Ads Manager", campaigns, today, [{**row, "amount": Decimal("70")}])
    for basis in ("conversion", "click"):
        rep = report.build(report.Query(today, today, basis, ["campaign"]))
        assert {r.keys[0]: r.cost for r in rep.rows if r.cost} == {"c2": Decimal(70)}


def test_cost_alone_on_a_day_makes_a_line_and_sorting_by_profit(campaigns):
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    spend.replace_day(
        "facebook:1",
        campaigns,
        yesterday,
        [{"campaign": "c3", "adset": "", "ad": "", "geo": "", "amount": Decimal("5"),
          "currency": "USD"}],
    )  # fmt: skip
    rep = report.build(report.Query(yesterday, today, group=["campaign"], sort="profit"))
    assert [(r.keys[0], r.value("profit")) for r in rep.rows] == [
        ("c1", Decimal(60)),
        ("c3", Decimal(-5)),
        ("c2", Decimal(-60)),
    ]
    by_day = report.build(report.Query(yesterday, today, group=["campaign"]), daily=True)
    assert by_day.daily == [(Decimal(0), Decimal(5)), (Decimal(100), Decimal(100))]


def test_a_manager_sees_their_revenue_without_cost(client, campaigns, team):
    lead = Client.objects.filter(advert_campaign_id="c1").first()
    lead.manager = team["ann"]
    lead.save()
    client.force_login(team["ann"])
    today = timezone.localdate()
    response = client.get(f"/admin/crm/dailystat/?group=campaign&date_from={today}&date_to={today}")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="stats-no-cost"' in html
    titles = [h["title"] for h in response.context["head"]]
    assert "Revenue (USD)" in titles and not any(t.startswith(("Cost", "Profit")) for t in titles)
    assert 'data-label="Cost (USD)"' not in html

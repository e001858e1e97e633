import csv
import datetime
import io
import re
from decimal import Decimal
from html import unescape

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm import admin_stats, report
from crm.models import Client, Conversion, DailyStat


def rollup():
    """{(basis, day, goal_pk, campaign, geo, manager): (count, amount)} of the finest
    grain, without zero rows."""
    return {
        (s.basis, s.day, s.goal_pk, s.campaign, s.geo, s.manager_pk): (s.count, s.amount)
        for s in DailyStat.objects.filter(grain="*")
        if s.count or s.amount
    }


def goal_pk(spot, token):
    return spot.goals.get(token=token).pk


def test_a_lead_and_its_conversions_are_counted_on_both_bases(spot, lead):
    lead.record_conversion("registration")
    lead.record_conversion("sale", Decimal("40"), "USD", "t1")
    day = timezone.localdate()
    stats = rollup()
    assert stats[("click", day, 0, "c1", "", 0)] == (1, Decimal("0"))
    for basis in ("conversion", "click"):
        assert stats[(basis, day, goal_pk(spot, "dep"), "c1", "", 0)] == (1, Decimal("40"))
        assert stats[(basis, day, goal_pk(spot, "reg"), "c1", "", 0)] == (1, Decimal("0"))


def test_a_rejected_conversion_leaves_the_statistics_and_an_amount_change_moves_them(spot, lead):
    lead.record_conversion("sale", Decimal("40"), "USD", "t1")
    lead.record_conversion("sale", Decimal("55"), "USD", "t1")
    key = ("conversion", timezone.localdate(), goal_pk(spot, "dep"), "c1", "", 0)
    assert rollup()[key] == (1, Decimal("55"))
    lead.record_conversion("sale", None, "USD", "t1", status="rejected")
    assert key not in rollup()
    lead.record_conversion("sale", None, "USD", "t1", status="approved")
    assert rollup()[key] == (1, Decimal("55"))


def test_a_changed_manager_or_campaign_moves_the_lead_and_its_conversions(spot, lead, admin_user):
    lead.record_conversion("registration")
    lead.manager = admin_user
    lead.advert_campaign_id = "c2"
    lead.save()
    keys = {k[2:] for k in rollup()}
    assert keys == {(0, "c2", "", admin_user.pk), (goal_pk(spot, "reg"), "c2", "", admin_user.pk)}


def test_a_deleted_conversion_leaves_the_statistics(spot, lead):
    conversion, _ = lead.record_conversion("registration")
    conversion.delete()
    assert {k[2] for k in rollup()} == {0}


def test_rebuild_gives_the_rollup_the_signals_kept(spot, lead, capsys):
    other = Client.objects.create(spot=spot, geo="DE")
    lead.record_conversion("registration")
    lead.record_conversion("sale", Decimal("10"), "USD", "a")
    lead.record_conversion("sale", Decimal("15"), "USD", "b")
    other.record_conversion("sale", Decimal("7"), "USD", "c", status="rejected")
    kept = rollup()
    DailyStat.objects.all().delete()
    call_command("rebuild_stats")
    assert rollup() == kept
    err = capsys.readouterr()
    assert "100% 7/7" in err.err and "statistics rows" in err.out


def backdate(conversion, days):
    Conversion.objects.filter(pk=conversion.pk).update(
        created=conversion.created - datetime.timedelta(days=days)
    )


def test_click_date_and_conversion_date_reports_differ_for_late_deposits(spot, lead):
    Client.objects.filter(pk=lead.pk).update(created=timezone.now() - datetime.timedelta(days=3))
    lead.refresh_from_db()
    lead.record_conversion("sale", Decimal("40"), "USD", "t1")
    call_command("rebuild_stats")
    today = timezone.localdate()
    start = today - datetime.timedelta(days=5)
    by_conv = report.build(report.Query(start, today, "conversion", ["day"], spot))
    by_click = report.build(report.Query(start, today, "click", ["day"], spot))
    assert {(r.keys[0], r.counts.get("dep", 0), r.leads) for r in by_conv.rows} == {
        (today, 1, 0),
        (today - datetime.timedelta(days=3), 0, 1),
    }
    assert {(r.keys[0], r.counts.get("dep", 0), r.leads) for r in by_click.rows} == {
        (today - datetime.timedelta(days=3), 1, 1)
    }


@pytest.fixture
def traffic(spot):
    dep = spot.goals.get(token="dep")
    dep.show_sum = True
    dep.save()
    spot.goals.filter(token="redep").update(show_sum=False)  # one sum column
    a = Client.objects.create(spot=spot, geo="DE", advert_campaign_id="c1")
    b = Client.objects.create(spot=spot, geo="DE", advert_campaign_id="c1")
    Client.objects.create(spot=spot, geo="BR", advert_campaign_id="c2")
    Client.objects.create(spot=spot, geo="BR", advert_campaign_id="c2")
    a.record_conversion("registration")
    b.record_conversion("registration")
    a.record_conversion("sale", Decimal("100"), "USD", "x1")
    return spot


def test_the_report_has_leads_goals_rates_and_revenue_per_dimension(traffic):
    today = timezone.localdate()
    rep = report.build(report.Query(today, today, group=["geo"]))
    assert report.header(rep) == [
        "Geo",
        "Leads",
        "Registration count",
        "First deposit count",
        "First deposit sum (USD)",
        "Repeat deposit count",
        "Revenue (USD)",
        "Cost (USD)",
        "Profit (USD)",
        "ROI",
        "EPC (USD)",
        "Registration CR",
        "First deposit CR",
        "Repeat deposit CR",
        "Dep per reg",
        "Redep per dep",
        "Registration CPA (USD)",
        "First deposit CPA (USD)",
        "Repeat deposit CPA (USD)",
    ]
    rows = {r.labels[0]: report.cells(rep, r) for r in rep.rows}
    # No spend: cost 0, profit the revenue, no ROI nor CPA (nothing to divide by).
    assert rows["BR"] == [
        "BR", "2", "0", "0", "0.00", "0", "0.00", "0.00", "0.00", "", "0.00",
        "0.0%", "0.0%", "0.0%", "", "", "", "", "",
    ]  # fmt: skip
    assert rows["DE"] == [
        "DE", "2", "2", "1", "100.00", "0", "100.00", "0.00", "100.00", "", "50.00",
        "100.0%", "50.0%", "0.0%", "50.0%", "0.0%", "0.00", "0.00", "",
    ]  # fmt: skip
    assert report.cells(rep, rep.total)[:3] == ["Total", "4", "2"]
    # Sorted by revenue by default: DE first.
    assert [r.labels[0] for r in rep.rows] == ["DE", "BR"]


def test_the_statistics_page_shows_the_table_and_an_svg_chart(admin_client, traffic):
    today = timezone.localdate()
    by_day = admin_client.get(
        f"/admin/crm/dailystat/?group=day&basis=conversion&date_from={today}&date_to={today}"
    )
    assert by_day.status_code == 200
    html = by_day.content.decode()
    assert '<svg id="stats-chart"' in html and 'data-label="Leads"' in html
    by_campaign = admin_client.get(
        f"/admin/crm/dailystat/?group=campaign&basis=conversion&date_from={today}&date_to={today}"
    ).content.decode()
    # Without days the chart ranks the rows: one bar per campaign.
    assert by_campaign.count('class="bar"') == 2 and 'data-label="c1"' in by_campaign
    assert '">c1</a></td>' in by_campaign and '">c2</a></td>' in by_campaign


def test_bad_filter_input_shows_an_error_not_a_500(admin_client, traffic):
    page = admin_client.get("/admin/crm/dailystat/?date_from=2026-02-30&date_to=x")
    assert page.status_code == 200
    assert "Enter a valid date" in page.content.decode()
    backwards = admin_client.get("/admin/crm/dailystat/?date_from=2026-02-10&date_to=2026-02-01")
    assert "is after" in backwards.content.decode()
    for odd in (
        "group=nope",
        "group=geo&then=geo",
        "manager=abc",
        "partner=" + "9" * 30,
        "sort=zzz",
        "campaign=" + "x" * 500,
    ):
        assert admin_client.get(f"/admin/crm/dailystat/?{odd}").status_code == 200
        assert admin_client.get(f"/admin/crm/dailystat/csv/?{odd}").status_code == 200


def page_lines(admin_client, query):
    """The table's lines as the page shows them, tags stripped."""
    html = admin_client.get(f"/admin/crm/dailystat/?{query}").content.decode()
    body = html.split('<table id="stats-table"')[1].split("</table>")[0]
    lines = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", td) for td in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)
        ]
        lines.append([unescape(c).replace(" ▼", "").replace(" ▲", "") for c in cells])
    return lines


def csv_lines(admin_client, query):
    response = admin_client.get(f"/admin/crm/dailystat/csv/?{query}")
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize(
    "grouping",
    ["group=geo&basis=click", "group=campaign&then=geo&sort=-leads", "group=day&then=geo"],
)
def test_the_csv_has_exactly_the_lines_of_the_page(admin_client, traffic, grouping):
    # The same lines and numbers; the page writes them for people (1,234.50,
    # 12.5%), the CSV as plain numbers (1234.5, 12.5) with the unit in the title.
    today = timezone.localdate()
    query = f"{grouping}&date_from={today}&date_to={today}"

    def number(text):
        text = text.replace(",", "").removesuffix("%").removesuffix(" (%)")
        try:
            return Decimal(text)
        except ArithmeticError:
            return text

    def numbers(lines):
        return [[number(cell) for cell in line] for line in lines]

    assert numbers(csv_lines(admin_client, query)) == numbers(page_lines(admin_client, query))


def test_the_statistics_page_needs_a_staff_login(client, db):
    assert client.get("/admin/crm/dailystat/").status_code == 302
    assert client.get("/admin/crm/dailystat/csv/").status_code == 302


@pytest.mark.browser
def test_the_chart_renders_in_a_browser(admin_page, live_server, spot):
    lead = Client.objects.create(spot=spot, advert_campaign_id="c9")
    lead.record_conversion("registration")
    admin_page.goto(f"{live_server.url}/admin/crm/dailystat/?group=day")
    chart = admin_page.locator("svg#stats-chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    assert admin_page.locator("svg#stats-chart polyline.series").count() >= 2


@pytest.mark.browser
def test_a_campaign_row_drills_down_to_its_days(admin_page, live_server, spot):
    today = timezone.localdate()
    for campaign, days_ago in (("c9", 0), ("c9", 2), ("c8", 1)):
        lead = Client.objects.create(spot=spot, advert_campaign_id=campaign)
        Client.objects.filter(pk=lead.pk).update(
            created=timezone.now() - datetime.timedelta(days=days_ago)
        )
    call_command("rebuild_stats")
    admin_page.goto(f"{live_server.url}/admin/crm/dailystat/?group=campaign&basis=click")
    admin_page.locator("#stats-table a.drill", has_text="c9").click()
    admin_page.wait_for_url("**group=day**")
    assert admin_page.locator("#stats-filters").inner_text().startswith("Only Campaign c9")
    days = admin_page.locator("#stats-table tbody tr td:first-child").all_inner_texts()
    assert days == [today.isoformat(), (today - datetime.timedelta(days=2)).isoformat()]
    assert admin_page.locator("svg#stats-chart polyline.series").count() >= 1


def test_long_reports_are_paged_and_the_csv_has_every_row(admin_client, spot, monkeypatch):
    for n in range(5):
        Client.objects.create(spot=spot, advert_campaign_id=f"c{n}")
    monkeypatch.setattr(admin_stats, "PAGE_SIZE", 2)
    first = admin_client.get("/admin/crm/dailystat/?group=campaign&sort=campaign").content.decode()
    third = admin_client.get("/admin/crm/dailystat/?group=campaign&sort=campaign&p=3")
    third = third.content.decode()
    assert "lines 1–2 of 5" in first and '">c0</a>' in first and '">c2</a>' not in first
    assert "lines 5–5 of 5" in third and '">c4</a>' in third
    csv_rows = admin_client.get("/admin/crm/dailystat/csv/?group=campaign").content.decode()
    assert len(csv_rows.strip().splitlines()) == 1 + 5 + 1


def test_saving_rows_loaded_with_deferred_fields_keeps_the_statistics(spot, lead, admin_user):
    lead.record_conversion("sale", Decimal("40"), "USD", "t1")
    kept = rollup()
    partial = Client.objects.only("id", "name").get(pk=lead.pk)
    partial.name = "Renamed"
    partial.save(update_fields=["name"])
    conversion = Conversion.objects.only("id", "tid").get()
    conversion.tid = "t1b"
    conversion.save(update_fields=["tid"])
    assert rollup() == kept
    moved = Client.objects.only("id").get(pk=lead.pk)
    moved.manager = admin_user
    moved.save(update_fields=["manager"])
    assert {k[5] for k in rollup()} == {admin_user.pk}
    assert sum(v[0] for v in rollup().values()) == sum(v[0] for v in kept.values())


def figures(rep):
    return sorted(
        (r.keys, r.leads, dict(r.counts), r.revenue, r.unrated, [c.keys for c in r.children])
        for r in rep.rows
    )


@pytest.mark.parametrize(
    "group", [["day"], ["geo"], ["campaign"], ["campaign", "geo"], ["day", "geo"], ["ad"]]
)
def test_every_grain_gives_what_the_finest_gives_after_moves_and_changes(
    spot, admin_user, monkeypatch, group
):
    leads = [
        Client.objects.create(spot=spot, geo=geo, advert_campaign_id=c, advert_ad_id=ad)
        for geo, c, ad in [("DE", "c1", "a1"), ("DE", "c2", "a2"), ("BR", "c1", "a1"), ("", "", "")]
    ]
    leads[0].record_conversion("registration")
    leads[0].record_conversion("sale", Decimal("40.12345678"), "USD", "t1")
    leads[1].record_conversion("sale", Decimal("7"), "EUR", "t2")  # no rate: unrated
    leads[2].record_conversion("sale", Decimal("5"), "USD", "t3")
    leads[2].record_conversion("sale", None, "USD", "t3", status="rejected")
    leads[1].geo, leads[1].advert_campaign_id, leads[1].manager = "BR", "c3", admin_user
    leads[1].save()
    today = timezone.localdate()
    query = report.Query(today, today, group=group)
    coarse = report.build(query)
    assert report.grain_for(query) != "*" or group == ["ad"]
    monkeypatch.setattr(report, "grain_for", lambda q: "*")
    assert figures(coarse) == figures(report.build(query))
    assert coarse.total.unrated == 1 and coarse.total.revenue == Decimal("40.12345678")


def test_rows_sort_by_any_column_and_groups_total_their_lines(admin_client, traffic):
    today = timezone.localdate()
    Client.objects.create(spot=traffic, geo="PL", advert_campaign_id="c2")
    base = f"/admin/crm/dailystat/?date_from={today}&date_to={today}&group=campaign"

    def first_cells(query):
        return [r["cells"][:2] for r in admin_client.get(base + query).context["rows"]]

    assert first_cells("&sort=-leads") == [["c2", "3"], ["c1", "2"]]
    assert first_cells("&sort=leads") == [["c1", "2"], ["c2", "3"]]
    assert first_cells("") == [["c1", "2"], ["c2", "3"]]  # by revenue, largest first
    assert first_cells("&sort=-campaign") == [["c2", "3"], ["c1", "2"]]
    nested = admin_client.get(base + "&then=geo&sort=-leads").context["rows"]
    assert [r["cells"][:3] for r in nested] == [
        ["c2", "Total", "3"],
        ["c2", "BR", "2"],
        ["c2", "PL", "1"],
        ["c1", "Total", "2"],
        ["c1", "DE", "2"],
    ]
    assert [r["subtotal"] for r in nested] == [True, False, False, True, False]
    # The header links toggle the order of their column.
    head = admin_client.get(base + "&sort=-leads").context["head"]
    leads = next(h for h in head if h["title"].startswith("Leads"))
    assert leads["title"] == "Leads ▼" and "sort=leads" in leads["link"]


def test_all_spots_share_a_column_per_goal_token(admin_client, traffic):
    from tracker.models import Spot

    other = Spot.objects.create(name="Other", slug="other")
    lead = Client.objects.create(spot=other, geo="PL", advert_campaign_id="c9")
    lead.record_conversion("sale", Decimal("7"), "USD", "o1")
    today = timezone.localdate()
    rep = report.build(report.Query(today, today, group=["spot"]))
    assert report.header(rep).count("First deposit count") == 1
    assert {r.labels[0]: (r.leads, r.counts["dep"]) for r in rep.rows} == {
        "Casino bot": (4, 1),
        "Other": (1, 1),
    }
    one = report.build(report.Query(today, today, group=["spot"], spot=other))
    assert [r.labels[0] for r in one.rows] == ["Other"]
    assert admin_client.get("/admin/crm/dailystat/?group=spot").status_code == 200

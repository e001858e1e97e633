"""The statistics page's column chooser: each user's choice is kept for them
(crm.ReportSettings.columns) and shapes their page and CSV, not anyone else's."""

import datetime
import os
from decimal import Decimal
from pathlib import Path

import pytest

from crm import report
from crm.models import Client, ReportSettings

URL = "/admin/crm/dailystat/"
SAVE = "/admin/crm/dailystat/columns/"


@pytest.fixture
def traffic(spot):
    lead = Client.objects.create(spot=spot, geo="DE", advert_campaign_id="c1")
    lead.record_conversion("sale", Decimal("100"), "USD", "t1")
    Client.objects.create(spot=spot, geo="BR", advert_campaign_id="c2")
    return spot


def titles(client, query="group=campaign"):
    return [h["title"].rstrip(" ▲▼") for h in client.get(f"{URL}?{query}").context["head"]]


def csv_header(client, query="group=campaign"):
    return client.get(f"/admin/crm/dailystat/csv/?{query}").content.decode().splitlines()[0]


def test_a_user_s_columns_are_kept_for_them_alone(client, traffic, team, admin_user):
    client.force_login(team["lead"])
    every = titles(client)
    assert "Cost (USD)" in every and "ROI" in every
    known = [c[0] for c in client.get(URL).context["columns"]]
    response = client.post(
        SAVE,
        {"columns": ["revenue", "leads", "n:dep"], "known": known, "next": "group=geo&p=2"},
    )
    assert response.status_code == 302 and response["Location"] == f"{URL}?group=geo&p=2"
    assert ReportSettings.objects.get(user=team["lead"]).columns == ["revenue", "leads", "n:dep"]
    assert titles(client) == ["Campaign", "Leads", "First deposit count", "Revenue (USD)"]
    assert csv_header(client) == "Campaign,Leads,First deposit count,Revenue (USD)"
    # Kept across sessions; another user still sees every column.
    client.logout()
    client.force_login(team["lead"])
    assert titles(client) == ["Campaign", "Leads", "First deposit count", "Revenue (USD)"]
    client.force_login(admin_user)
    assert titles(client) == every


def test_the_chooser_shows_each_column_ticked_as_chosen(client, traffic, team):
    client.force_login(team["lead"])
    client.post(SAVE, {"columns": ["leads", "cost"]})
    html = client.get(URL).content.decode()
    assert 'name="columns" value="cost" checked' in html
    assert 'name="columns" value="revenue">' in html  # offered, not ticked


def test_every_column_ticked_or_reset_means_every_column(client, traffic, team):
    client.force_login(team["lead"])
    known = [c[0] for c in client.get(URL).context["columns"]]
    client.post(SAVE, {"columns": known, "known": known})
    assert ReportSettings.objects.get().columns == []
    client.post(SAVE, {"columns": ["leads"], "known": known})
    assert titles(client) == ["Campaign", "Leads"]
    client.post(SAVE, {"columns": ["leads"], "reset": "1"})
    assert ReportSettings.objects.get().columns == []


def test_odd_input_is_dropped_and_the_page_keeps_working(client, traffic, team):
    client.force_login(team["lead"])
    client.post(SAVE, {"columns": ["leads", "x" * 500, "<b>", "nothing:here"]})
    assert ReportSettings.objects.get().columns == ["leads", "nothing:here"]
    assert titles(client) == ["Campaign", "Leads"]
    client.post(SAVE, {"columns": ["nothing:here"]})
    assert "Revenue (USD)" in titles(client)  # no known column chosen: all of them
    assert client.get(SAVE).status_code == 405


def test_rows_still_sort_by_revenue_when_it_is_hidden(client, traffic, team):
    client.force_login(team["lead"])
    client.post(SAVE, {"columns": ["leads"]})
    rows = client.get(f"{URL}?group=campaign").context["rows"]
    assert [r["cells"][0] for r in rows] == ["c1", "c2"]
    assert client.get(f"{URL}?group=campaign&sort=-profit").status_code == 200


@pytest.mark.browser
def test_a_media_buyer_picks_columns_compares_and_takes_a_preset_in_a_browser(
    admin_page, live_server, traffic
):
    page = admin_page
    page.goto(f"{live_server.url}{URL}?group=campaign")
    page.locator("#stats-columns summary").click()
    for box in page.locator("#stats-columns input[name=columns]").all():
        box.set_checked(box.get_attribute("value") in ("leads", "revenue", "profit"))
    page.locator("#stats-columns input[value='Save columns']").click()
    page.wait_for_selector("#stats-table")
    heads = [t.strip() for t in page.locator("#stats-table thead th").all_text_contents()]
    assert heads == ["Campaign", "Leads", "Revenue (USD)", "Profit (USD)"]
    assert page.locator(".messagelist").inner_text().strip() == "Your columns are saved."
    page.locator("#id_compare").check()
    page.locator("#stats-filter input[type=submit]").click()
    page.wait_for_url("**compare=on**")
    assert page.locator("#stats-table small.delta").count() > 0
    assert page.locator("#stats-table td.gain").count() >= 1  # c1's profit, in green
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=Path(os.environ["SCREENSHOT_DIR"]) / "statistics-compare.png")
    page.locator("#stats-presets a[data-preset=yesterday]").click()
    page.wait_for_url("**preset=yesterday**")
    yesterday = report.local_today() - datetime.timedelta(days=1)
    assert page.locator("#id_date_from").input_value() == yesterday.isoformat()
    assert page.locator("svg#stats-money-chart polyline.series").count() == 2

"""Date presets of the statistics page in the installation's time zone, and the
comparison with the previous period of the same length."""

import datetime
import zoneinfo

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from crm import report
from crm.models import Client

URL = "/admin/crm/dailystat/"


def shown_dates(response):
    form = response.context["form"]
    return form["date_from"].value(), form["date_to"].value()


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("today", ("2026-03-15", "2026-03-15")),
        ("yesterday", ("2026-03-14", "2026-03-14")),
        ("last7", ("2026-03-09", "2026-03-15")),
        ("last30", ("2026-02-14", "2026-03-15")),
        ("this_month", ("2026-03-01", "2026-03-15")),
        ("last_month", ("2026-02-01", "2026-02-28")),
        ("custom", None),
        ("nonsense", None),
    ],
)
def test_each_preset_gives_its_days(preset, expected):
    dates = report.preset_dates(preset, datetime.date(2026, 3, 15))
    assert (dates and tuple(d.isoformat() for d in dates)) == expected


def test_last_month_in_january_is_december():
    assert report.preset_dates("last_month", datetime.date(2026, 1, 3)) == (
        datetime.date(2025, 12, 1),
        datetime.date(2025, 12, 31),
    )


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_today_is_the_installations_today(admin_client, zone):
    # UTC+14 and UTC-11: at any hour one of them is on another date than UTC.
    with override_settings(TIME_ZONE=zone):
        there = datetime.datetime.now(zoneinfo.ZoneInfo(zone)).date()
        for preset, days_back in (("today", 0), ("yesterday", 1)):
            day = (there - datetime.timedelta(days=days_back)).isoformat()
            response = admin_client.get(f"{URL}?preset={preset}")
            assert response.status_code == 200
            assert shown_dates(response) == (day, day)
        html = admin_client.get(f"{URL}?preset=today").content.decode()
        assert 'data-preset="today" class="chosen"' in html


def test_a_preset_link_replaces_the_dates_and_keeps_the_rest(admin_client, spot):
    Client.objects.create(spot=spot, advert_campaign_id="c1")
    page = admin_client.get(f"{URL}?group=geo&date_from=2026-01-01&date_to=2026-01-05")
    presets = {name: href for name, _, href, _ in page.context["presets"]}
    assert "group=geo" in presets["last7"] and "date_from" not in presets["last7"]
    # A drill-down to a day drops the preset, or the preset would hide the day.
    (day,) = admin_client.get(f"{URL}?preset=last7&group=day").context["rows"]
    assert "preset" not in day["link"] and "date_from" in day["link"]


def backdated(spot, campaign, days_ago, n=1):
    for _ in range(n):
        lead = Client.objects.create(spot=spot, advert_campaign_id=campaign)
        Client.objects.filter(pk=lead.pk).update(
            created=timezone.now() - datetime.timedelta(days=days_ago)
        )


@pytest.fixture
def two_periods(spot):
    """Today and yesterday: c1 2 leads, c2 1; the two days before: c1 1 lead, c2 2."""
    backdated(spot, "c1", 0, 2)
    backdated(spot, "c2", 1, 1)
    backdated(spot, "c1", 2, 1)
    backdated(spot, "c2", 3, 2)
    call_command("rebuild_stats")
    return spot


def test_the_comparison_shows_each_figure_s_change(admin_client, two_periods):
    today = timezone.localdate()
    start = today - datetime.timedelta(days=1)
    query = f"group=campaign&basis=click&date_from={start}&date_to={today}&sort=campaign"
    plain = admin_client.get(f"{URL}?{query}")
    assert 'class="delta"' not in plain.content.decode()  # off by default
    compared = admin_client.get(f"{URL}?{query}&compare=on")
    rows = compared.context["rows"]
    leads = [(r["cells"][0], r["cells"][1], r["deltas"][0]) for r in rows]
    assert leads == [("c1", "2", "+100 %"), ("c2", "1", "-50 %")]
    html = compared.content.decode()
    assert '2<br><small class="delta">+100 %</small>' in html
    total = html.split('<tr class="total">')[1]
    assert '<small class="delta">+0 %</small>' in total.split("</tr>")[0]
    earlier = (today - datetime.timedelta(days=3)).isoformat()
    assert f"compared with {earlier}" in html


def test_by_day_each_day_is_compared_with_its_day_one_period_before(admin_client, two_periods):
    today = timezone.localdate()
    start = today - datetime.timedelta(days=1)
    query = f"group=day&basis=click&date_from={start}&date_to={today}&compare=1"
    rows = admin_client.get(f"{URL}?{query}").context["rows"]
    # today (2) against 2 days ago (1); yesterday (1) against 3 days ago (2)
    assert [(r["cells"][1], r["deltas"][0]) for r in rows] == [("2", "+100 %"), ("1", "-50 %")]


def test_a_figure_out_of_nothing_is_new_and_a_rate_moves_in_points():
    assert report.delta(5, 0, "leads") == "new"
    assert report.delta(0, 0, "leads") == ""
    assert report.delta(None, 3, "roi") == ""
    assert report.delta(25, 10, "cr:dep") == "+15.0 pp"
    assert report.delta(-20, 40, "roi") == "-60.0 pp"

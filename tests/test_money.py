"""Money right in every number (issue 11): exchange rates, revenue goals, 8 places."""

import csv
import datetime
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm import report
from crm.models import Client, Conversion, CustomField, DailyStat, ExchangeRate
from postbacks.models import OutgoingPostback
from tests.receiver import drain
from tracker.models import Goal

TODAY = timezone.localdate()


def day(n):
    return TODAY - datetime.timedelta(days=n)


def postback(client, spot, lead, event, amount, currency, tid):
    answer = client.get(
        f"/api/postbacks/{spot.postback_token}/tracker-postback",
        {
            "clickid": lead.click_id,
            "tracker.event": event,
            "tracker.cost": amount,
            "tracker.currency": currency,
            "tracker.tid": tid,
        },
    )
    assert answer.status_code == 200, answer.content
    return answer.json()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def ecb_history(tmp_path):
    """The ECB's historical format: per euro, newest first, N/A where none, a trailing comma.
    No fixing today or two days ago; USD moves from 1.10 to 1.25 per euro."""
    return write(
        tmp_path,
        "eurofxref-hist.csv",
        "Date,USD,JPY,BRL,CYP,\n"
        f"{day(1)},1.2500,160.00,N/A,N/A,\n"
        f"{day(3)},1.1000,150.00,N/A,N/A,\n",
    )


def revenue(spot, start=None):
    rep = report.build(report.Query(start or day(10), TODAY, group=["spot"], spot=spot))
    return rep.total.revenue, rep.total.unrated


def test_amounts_take_the_rate_of_their_day_or_the_latest_before_and_wait_for_missing_ones(
    client, spot, lead, tmp_path, capsys
):
    call_command("import_rates", ecb_history(tmp_path))
    # Per US dollar: 1 / 1.25 euro on day 1, 1 / 1.10 on day 3; the yen likewise.
    assert ExchangeRate.objects.get(day=day(1), currency="EUR").rate == Decimal("0.8")
    assert ExchangeRate.objects.get(day=day(3), currency="JPY").rate == Decimal("136.363636363636")
    err = capsys.readouterr().err
    assert "Reading rates" in err and "100% 3/3" in err and "Storing rates" in err

    today = postback(client, spot, lead, "dep", "10", "EUR", "t1")
    assert today["warnings"] == []
    eur = Conversion.objects.get(tid="t1")
    assert eur.amount == Decimal("10") and eur.currency == "EUR"
    assert eur.reported_amount == Decimal("12.5")  # today has no rate: day 1's

    brl = postback(client, spot, lead, "redep", "50", "BRL", "t2")
    assert "No exchange rate from USD to BRL" in brl["warnings"][0]
    assert Conversion.objects.get(tid="t2").reported_amount is None
    assert revenue(spot) == (Decimal("12.5"), 1)

    # A conversion of two days ago takes day 3's rate, the latest before it.
    old = Conversion.objects.create(
        spot=spot, client=lead, goal=spot.goals.get(token="redep"), amount=11, currency="EUR"
    )
    Conversion.objects.filter(pk=old.pk).update(created=timezone.now() - datetime.timedelta(2))
    call_command("rebuild_stats")  # after a bulk edit, as its help says
    call_command("revalue_conversions", "--all")
    assert Conversion.objects.get(pk=old.pk).reported_amount == Decimal("12.1")

    # BRL rates arrive in the plain format: the flagged amount is filled in, and counted.
    call_command(
        "import_rates", write(tmp_path, "brl.csv", f"date,currency,rate\n{day(5)},BRL,5\n")
    )
    out = capsys.readouterr().out
    assert "1 conversion(s) have no amount in USD yet" in out
    call_command("revalue_conversions")
    assert "1 of 1 conversion(s) revalued" in capsys.readouterr().out
    assert Conversion.objects.get(tid="t2").reported_amount == Decimal("10")
    assert revenue(spot) == (Decimal("12.5") + Decimal("12.1") + Decimal("10"), 0)
    # What the signals and revaluing kept is what a rebuild from the rows gives.
    kept = sorted(DailyStat.objects.values_list("grain", "basis", "goal_pk", "amount", "unrated"))
    call_command("rebuild_stats")
    rebuilt = DailyStat.objects.values_list("grain", "basis", "goal_pk", "amount", "unrated")
    assert sorted(rebuilt) == kept


def test_the_statistics_page_says_how_many_amounts_lack_a_rate(admin_client, spot, lead):
    lead.record_conversion("dep", Decimal("5"), "GBP", "g1")
    page = admin_client.get("/admin/crm/dailystat/?group=campaign").content.decode()
    assert 'id="stats-unrated"' in page and "1 amount in these figures has no exchange rate" in page
    assert "Revenue (USD)" in page


def test_the_ecb_daily_file_and_bad_files(spot, tmp_path, settings):
    settings.REPORTING_CURRENCY = "EUR"
    daily = write(
        tmp_path, "eurofxref.csv", "Date, USD, JPY, \n04 December 2026, 1.0561, 159.01, \n"
    )
    call_command("import_rates", daily)
    rates = dict(ExchangeRate.objects.values_list("currency", "rate"))
    assert rates == {"USD": Decimal("1.0561"), "JPY": Decimal("159.01")}
    assert set(ExchangeRate.objects.values_list("base", flat=True)) == {"EUR"}
    for text, message in [
        ("date,currency,rate\n2026-12-01,USD,abc\n", "Line 2: the rate 'abc' is not a number"),
        ("2026-12-01,USD,0\n", "above zero"),
        ("2026-13-01,USD,1\n", "is not a date"),
        ("", "empty"),
        ("Date,USD\n2026-12-01,1.1\n2026-12-02,x\n", "Line 3"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("import_rates", write(tmp_path, "bad.csv", text))
    assert ExchangeRate.objects.count() == 2  # a bad file stores nothing


def test_a_rate_is_edited_in_the_admin_with_form_errors(admin_client, db):
    url = "/admin/crm/exchangerate/add/"
    bad = admin_client.post(url, {"day": "2026-12-01", "currency": "eur", "rate": "0"})
    assert bad.status_code == 200
    errors = bad.context["adminform"].form.errors
    assert "currency" in errors and "rate" in errors
    good = admin_client.post(url, {"day": "2026-12-01", "currency": "EUR", "rate": "0.95"})
    assert good.status_code == 302
    listing = admin_client.get("/admin/crm/exchangerate/").content.decode()
    assert "1 USD = 0.95 EUR" in listing
    again = admin_client.post(url, {"day": "2026-12-01", "currency": "EUR", "rate": "0.9"})
    assert again.status_code == 200 and "already" in again.content.decode()
    assert ExchangeRate.objects.get().rate == Decimal("0.95")


def test_only_revenue_goals_count_as_revenue(spot, lead, admin_client):
    payout = Goal.objects.create(spot=spot, name="Payout", token="payout", show_sum=True)
    assert not payout.revenue
    assert spot.goals.get(token="dep").revenue and not spot.goals.get(token="reg").revenue
    lead.record_conversion("reg", Decimal("3"), "USD")
    lead.record_conversion("dep", Decimal("40"), "USD", "d1")
    lead.record_conversion("payout", Decimal("25"), "USD", "p1")
    rep = report.build(report.Query(TODAY, TODAY, group=["campaign"]))
    [row] = rep.rows
    assert row.sums["payout"] == Decimal("25") and row.revenue == Decimal("40")
    cells = dict(zip(report.header(rep), report.cells(rep, row), strict=True))
    assert cells["Payout sum (USD)"] == "25.00" and cells["Revenue (USD)"] == "40.00"
    assert cells["EPC (USD)"] == "40.00"


@pytest.mark.usefixtures("outgoing")
def test_an_8_place_crypto_amount_reaches_the_macro_and_the_csv_unchanged(
    client, admin_client, spot, lead, receiver, settings
):
    settings.REPORTING_CURRENCY = "BTC"
    OutgoingPostback.objects.create(
        spot=spot, name="tracker", url=receiver.url + "/pb?sum={sum}&cur={currency}"
    )
    answer = postback(client, spot, lead, "dep", "0.00012345", "BTC", "b1")
    assert answer["warnings"] == []
    drain()
    [got] = [r for r in receiver.requests if r.path.startswith("/pb")]
    assert parse_qs(urlsplit(got.path).query) == {"sum": ["0.00012345"], "cur": ["BTC"]}
    dep = spot.goals.get(token="dep")
    dep.show_sum = True
    dep.save()
    rows = list(
        csv.DictReader(
            io.StringIO(admin_client.get("/admin/crm/dailystat/csv/?group=day").content.decode())
        )
    )
    assert rows[0]["First deposit sum (BTC)"] == "0.00012345"
    assert rows[0]["Revenue (BTC)"] == "0.00012345"
    conversions = admin_client.get("/admin/crm/conversion/").content.decode()
    assert "0.00012345" in conversions and "0.000123450" not in conversions


def test_amounts_keep_8_places_and_show_without_trailing_zeros(spot, lead):
    field = CustomField.objects.create(spot=spot, key="last", type=CustomField.MONEY)
    assert field.to_stored("0,123456789") == "0.12345679"
    assert field.to_stored("12.5") == "12.50"
    conversion, _ = lead.record_conversion("dep", Decimal("1234.56789012"), "USD", "x")
    conversion.refresh_from_db()
    assert conversion.amount == Decimal("1234.56789012")
    assert str(conversion).startswith("dep 1234.56789012 USD")


def test_a_client_made_before_the_partner_is_grouped_under_it_after_its_postback(
    client, spot, lead
):
    from tracker.models import Partner

    partner = Partner.objects.create(spot=spot, name="Casino network", slug="net")
    answer = client.get(
        f"/api/postbacks/{spot.postback_token}/tracker-postback",
        {"clickid": lead.click_id, "tracker.event": "reg", "partner": "net"},
    )
    assert answer.status_code == 200, answer.content
    assert Client.objects.get(pk=lead.pk).partner == partner
    rep = report.build(report.Query(TODAY, TODAY, group=["partner"]))
    assert [(r.labels[0], r.leads, r.counts["reg"]) for r in rep.rows] == [("Casino network", 1, 1)]

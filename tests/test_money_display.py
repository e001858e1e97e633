"""Money on screens reads as money (12,345.50 USD: cents and thousands), while
8 places stay stored and in the API; the statistics CSV has plain numbers and
rates as numbers; statistics columns tell apart goals of one name on two spots."""

import csv
import io
from decimal import Decimal

from django.utils import timezone

from crm import report, values
from crm.models import Client, Conversion
from tracker.models import Goal, Spot

TODAY = timezone.localdate()


def test_money_text_has_cents_and_thousands_and_keeps_a_crypto_amount_readable():
    assert values.money_text(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert values.money_text(Decimal("-1234567.125"), "EUR") == "-1,234,567.13 EUR"
    assert values.money_text(Decimal("0"), "USD") == "0.00 USD"
    assert values.money_text(Decimal("12.50000000")) == "12.50"
    # Under a cent: the places it needs, not a misleading 0.00.
    assert values.money_text(Decimal("0.00012345"), "BTC") == "0.00012345 BTC"
    assert values.money_text(None, "USD") == ""
    assert values.count_text(1234567) == "1,234,567"


def test_the_client_list_card_and_conversions_show_money_to_the_cent(admin_client, spot, lead):
    conversion, _ = lead.record_conversion("sale", Decimal("12345.5"), "USD", tid="t1")
    clients = admin_client.get("/admin/crm/client/").content.decode()
    assert "12,345.50 USD" in clients
    card = admin_client.get(f"/admin/crm/client/{lead.pk}/change/").content.decode()
    assert "12,345.50" in card and "12,345.50 USD" in card
    listed = admin_client.get("/admin/crm/conversion/").content.decode()
    assert "12,345.50" in listed
    # Stored and in the API as it came.
    assert Conversion.objects.get(pk=conversion.pk).amount == Decimal("12345.50000000")


def traffic(spot):
    dep = spot.goals.get(token="dep")
    dep.show_sum = True
    dep.save()
    for k in range(3):
        client = Client.objects.create(spot=spot, advert_campaign_id="c1")
        client.record_conversion("registration")
        if k:
            client.record_conversion("sale", Decimal("1234.5"), "USD", tid=f"t{k}")


def test_the_statistics_page_shows_money_for_people_and_the_csv_plain_numbers(admin_client, spot):
    traffic(spot)
    page = admin_client.get("/admin/crm/dailystat/?group=campaign").content.decode()
    assert '<td class="num">2,469.00</td>' in page and '<td class="num">66.7%</td>' in page
    text = admin_client.get("/admin/crm/dailystat/csv/?group=campaign").content.decode()
    [row, _total] = list(csv.DictReader(io.StringIO(text)))
    assert row["First deposit sum (USD)"] == "2469" and row["Revenue (USD)"] == "2469"
    assert row["EPC (USD)"] == "823"
    assert row["Dep per reg (%)"] == "66.67" and row["Registration CR (%)"] == "100"


def test_statistics_columns_name_the_spot_of_goals_that_share_a_name(spot):
    poker = Spot.objects.create(name="Poker landing", slug="poker")
    Goal.objects.create(spot=spot, name="Level up", token="level", show_sum=False)
    Goal.objects.create(spot=poker, name="Level up", token="levelup", show_sum=False)
    rep = report.build(report.Query(TODAY, TODAY, group=["day"]))
    titles = report.header(rep)
    assert "Level up · Casino bot count" in titles
    assert "Level up · Poker landing count" in titles
    assert len(titles) == len(set(titles))
    # Goals of one token on several spots stay one column, named once.
    assert titles.count("Registration count") == 1

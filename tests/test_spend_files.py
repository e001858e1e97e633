import datetime
import io
import os
import re
from decimal import Decimal
from html import unescape
from pathlib import Path

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum

from crm.models import DailyStat, Spend, SpendMapping

URL = "/admin/crm/spend/upload/"
ADS_MANAGER = (
    "Reporting starts,Reporting ends,Campaign name,Ad set name,Ad name,Country,"
    "Amount spent (USD),Impressions\n"
    "2026-03-01,2026-03-01,c1,s1,a1,de,10.50,1000\n"
    "2026-03-01,2026-03-01,c2,s2,a2,fr,4,300\n"
    "2026-03-02,2026-03-02,c1,s1,a1,de,7.25,900\n"
)


def csv_file(text, name="spend.csv"):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def upload(admin_client, spot, file, source="Ads Manager", **more):
    form = {"spot": spot.pk, "new_source": source, "file": file, **more}
    answer = admin_client.post(URL, form)
    assert answer.status_code == 200
    return answer


def text(answer):
    """The page's words, tags as spaces: '2026-03-01 2 14.50 USD' for a table line."""
    words = re.sub(r"<(?!input|select|option)[^>]+>", " ", answer.content.decode())
    return unescape(re.sub(r"\s+", " ", words))


def finish(admin_client, spot, answer, **changes):
    """Press Import on a preview page, keeping its mapping unless `changes` says otherwise."""
    ctx = answer.context
    form = {
        "spot": spot.pk,
        "source": ctx["form"].data.get("source", ""),
        "new_source": ctx["form"].data.get("new_source", ""),
        "token": ctx["token"],
        "currency": ctx["currency"],
        "_import": "1",
        **{f"col_{name}": chosen for name, _, chosen, _ in ctx["mapping"]},
        **changes,
    }
    return admin_client.post(URL, form)


def cost(day, basis="conversion"):
    return DailyStat.objects.filter(grain="", basis=basis, day=day).aggregate(c=Sum("cost"))["c"]


def test_the_page_offers_spot_source_and_file(admin_client, spot):
    answer = admin_client.get(URL)
    assert answer.status_code == 200
    page = text(answer)
    assert "Casino bot" in page and "New source" in page and 'type="file"' in page


def test_a_preview_guesses_the_columns_shows_totals_per_day_and_writes_nothing(admin_client, spot):
    answer = upload(admin_client, spot, csv_file(ADS_MANAGER))
    chosen = {name: title for name, _, title, _ in answer.context["mapping"]}
    assert chosen == {
        "day": "Reporting starts",
        "campaign": "Campaign name",
        "adset": "Ad set name",
        "ad": "Ad name",
        "geo": "Country",
        "amount": "Amount spent (USD)",
        "currency": "",
    }
    assert answer.context["currency"] == "USD"
    page = text(answer)
    assert "2026-03-01 2 14.50 USD" in page and "2026-03-02 1 7.25 USD" in page
    assert 'id="spend-import"' in page
    assert not Spend.objects.exists()


def test_a_good_csv_imports_after_its_preview(admin_client, spot):
    done = finish(admin_client, spot, upload(admin_client, spot, csv_file(ADS_MANAGER)))
    assert done.context["step"] == "done", done.context["form"].errors
    assert "Imported 3 lines of 3 read" in text(done)
    rows = Spend.objects.order_by("day", "campaign").values_list(
        "day", "source", "campaign", "adset", "ad", "geo", "amount", "currency"
    )
    assert list(rows) == [
        (
            datetime.date(2026, 3, 1),
            "file:Ads Manager",
            "c1",
            "s1",
            "a1",
            "DE",
            Decimal("10.5"),
            "USD",
        ),
        (
            datetime.date(2026, 3, 1),
            "file:Ads Manager",
            "c2",
            "s2",
            "a2",
            "FR",
            Decimal("4"),
            "USD",
        ),
        (
            datetime.date(2026, 3, 2),
            "file:Ads Manager",
            "c1",
            "s1",
            "a1",
            "DE",
            Decimal("7.25"),
            "USD",
        ),
    ]
    assert cost(datetime.date(2026, 3, 1)) == Decimal("14.5")
    assert cost(datetime.date(2026, 3, 2), "click") == Decimal("7.25")


def test_a_csv_with_one_bad_row_imports_nothing_and_names_the_row(admin_client, spot):
    bad = ADS_MANAGER + "2026-03-02,2026-03-02,c2,s2,a2,fr,abc,1\n"
    answer = upload(admin_client, spot, csv_file(bad), _import="1")
    page = text(answer)
    assert "row 5: amount 'abc' is not a number" in page
    assert "1 line of 4 cannot be read, so nothing will be imported" in page
    assert 'id="spend-import"' not in page
    assert not Spend.objects.exists()
    # Pressing Import anyway with the stored file changes nothing either.
    finish(admin_client, spot, answer)
    assert not Spend.objects.exists()
    assert not DailyStat.objects.exclude(cost=0).exists()


def test_every_bad_row_is_named(admin_client, spot):
    bad = "Day,Campaign name,Cost\n2026-03-01,c1,1\n,c2,1\nyesterday,c3,2\n2026-03-01,c4,-5\n"
    page = text(upload(admin_client, spot, csv_file(bad), _import="1"))
    assert "row 3: the day is missing" in page
    assert "row 4: day 'yesterday' is not a date" in page
    assert "row 5: amount '-5' is negative" in page
    assert not Spend.objects.exists()


def test_importing_the_same_file_twice_keeps_one_figure(admin_client, spot):
    for _ in range(2):
        upload(admin_client, spot, csv_file(ADS_MANAGER), _import="1")
    assert Spend.objects.count() == 3
    assert Spend.objects.aggregate(s=Sum("amount"))["s"] == Decimal("21.75")
    assert cost(datetime.date(2026, 3, 1)) == Decimal("14.5")
    # A corrected file replaces its days; days it does not have stay.
    fixed = "Day,Campaign name,Amount spent (USD)\n2026-03-01,c1,11\n"
    upload(admin_client, spot, csv_file(fixed), _import="1")
    assert cost(datetime.date(2026, 3, 1)) == Decimal("11")
    assert cost(datetime.date(2026, 3, 2)) == Decimal("7.25")


def test_an_xlsx_from_tiktok_imports(admin_client, spot):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        ["Stat time day", "Campaign name", "Ad group name", "Ad name", "Currency", "Total cost"]
    )
    sheet.append([datetime.datetime(2026, 3, 1), "t1", "g1", "ad1", "EUR", 3.5])
    sheet.append([datetime.datetime(2026, 3, 2), "t1", "g1", "ad1", "EUR", 2])
    data = io.BytesIO()
    book.save(data)
    file = SimpleUploadedFile("report.xlsx", data.getvalue())
    done = upload(admin_client, spot, file, source="TikTok Ads", _import="1")
    assert done.context["step"] == "done", text(done)
    rows = Spend.objects.order_by("day").values_list(
        "day", "campaign", "adset", "amount", "currency"
    )
    assert list(rows) == [
        (datetime.date(2026, 3, 1), "t1", "g1", Decimal("3.5"), "EUR"),
        (datetime.date(2026, 3, 2), "t1", "g1", Decimal("2"), "EUR"),
    ]
    # No EUR rate yet: counted as unrated until one comes.
    assert DailyStat.objects.get(grain="", basis="conversion", day="2026-03-01").cost_unrated == 1


def test_the_mapping_is_remembered_per_source(admin_client, spot):
    odd = "When,Spent,Camp\n2026-03-01,5,c1\n"
    answer = upload(admin_client, spot, csv_file(odd), source="My network")
    assert answer.context["problems"] == [
        "Choose the column of day.",
        "Choose the column of amount spent.",
    ]
    done = finish(
        admin_client,
        spot,
        answer,
        col_day="When",
        col_amount="Spent",
        col_campaign="Camp",
        currency="gbp",
    )
    assert done.context["step"] == "done"
    assert SpendMapping.objects.get(source="My network").columns["day"] == "When"
    # Next time the source's file is read with the same columns at once.
    again = admin_client.post(
        URL, {"spot": spot.pk, "source": "My network", "file": csv_file(odd.replace("5", "6"))}
    )
    chosen = {name: title for name, _, title, _ in again.context["mapping"]}
    assert (chosen["day"], chosen["amount"], chosen["campaign"]) == ("When", "Spent", "Camp")
    assert again.context["currency"] == "GBP"
    finish(admin_client, spot, again)
    assert Spend.objects.get().amount == Decimal("6")


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("empty.csv", b"\n,,\n", "The file is empty"),
        ("broken.xlsx", b"PK\x03\x04 not a zip", "not an XLSX spreadsheet"),
    ],
)
def test_a_file_that_cannot_be_read_is_an_error_not_a_500(admin_client, spot, name, data, said):
    answer = upload(admin_client, spot, SimpleUploadedFile(name, data), _import="1")
    assert said in text(answer)
    assert not Spend.objects.exists()


def test_the_spend_list_shows_money_and_totals(admin_client, spot):
    upload(admin_client, spot, csv_file(ADS_MANAGER), _import="1")
    page = text(admin_client.get("/admin/crm/spend/"))
    assert "10.50 USD" in page and "Total: 21.75 USD" in page
    assert "Upload spend file" in page
    page = text(admin_client.get("/admin/crm/spend/?day__gte=2026-03-02"))
    assert "Total: 7.25 USD" in page


def test_deleting_spend_takes_its_cost_out(admin_client, spot):
    upload(admin_client, spot, csv_file(ADS_MANAGER), _import="1")
    rows = Spend.objects.filter(day="2026-03-01")
    answer = admin_client.post(
        "/admin/crm/spend/",
        {"action": "delete_selected", "_selected_action": [r.pk for r in rows], "post": "yes"},
    )
    assert answer.status_code == 302
    assert cost(datetime.date(2026, 3, 1)) == Decimal("0")
    assert cost(datetime.date(2026, 3, 2)) == Decimal("7.25")


LONG = "Brazil spring lookalike audience casino bot campaign with a rather long name"


@pytest.mark.browser
def test_the_upload_previews_and_imports_in_a_browser_within_1366_px(
    admin_page, live_server, tmp_path
):
    from tracker.models import Spot

    spot = Spot.objects.create(name="Casino bot", slug="casino-bot", currency="USD")
    lines = [
        f"2026-03-0{d},{LONG} {k},{LONG} set,{LONG} ad,BR,{k}.{d}5"
        for d in (1, 2)
        for k in range(15)
    ]
    path = tmp_path / "ads-manager.csv"
    path.write_text(
        "Day,Campaign name,Ad set name,Ad name,Country,Amount spent (USD)\n" + "\n".join(lines)
    )
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    page = admin_page
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/crm/spend/")
    page.click("#spend-upload-link")
    page.select_option("#id_spot", str(spot.pk))
    page.fill("#id_new_source", "Ads Manager")
    page.set_input_files("#id_file", str(path))
    page.click("input[name=_preview]")
    page.wait_for_selector("#spend-days")
    page.screenshot(path=shots / "spend-upload-preview-1366.png", full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    assert page.locator("#spend-days tbody tr").count() == 2
    page.click("#spend-import")
    page.wait_for_selector("#spend-done")
    page.screenshot(path=shots / "spend-upload-done-1366.png", full_page=True)
    assert "Imported 30 lines of 30 read" in page.inner_text("#spend-done")
    assert Spend.objects.count() == 30

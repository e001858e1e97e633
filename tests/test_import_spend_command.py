"""Spend on demand (manage.py import_spend), on schedule (the workers' loop) and from the
ad accounts' admin: their token kept secret, their last import and error shown."""

import datetime
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm import spend_api
from crm.models import Spend
from postbacks.loops import periodic
from tests import standin as stand_in
from tracker.models import AdAccount

TODAY = timezone.localdate()
FB = f"/{spend_api.FACEBOOK_VERSION}/act_55/insights"


@pytest.fixture
def standin():
    """A stand-in of the outside API on 127.0.0.1."""
    yield from stand_in.serve()


def insights(standin, path=FB, spend="2.50"):
    """One row of spend on each day of the asked range."""

    def answer(asked):
        rng = json.loads(asked.query["time_range"])
        since, until = (datetime.date.fromisoformat(rng[k]) for k in ("since", "until"))
        days = [since + datetime.timedelta(n) for n in range((until - since).days + 1)]
        rows = [
            {"campaign_id": "c1", "ad_id": "a1", "spend": spend, "date_start": d.isoformat()}
            for d in days
        ]
        return 200, json.dumps({"data": rows}), {}

    standin.on(path, answer)


@pytest.fixture
def accounts(spot, standin, settings):
    settings.POSTBACKS_PIXEL_URLS = {**settings.POSTBACKS_PIXEL_URLS, "facebook": standin.url}
    insights(standin)
    insights(standin, f"/{spend_api.FACEBOOK_VERSION}/act_66/insights", spend="1")
    make = AdAccount.objects.create
    return [
        make(spot=spot, network="facebook", account_id="act_55", access_token="t55"),
        make(spot=spot, network="facebook", account_id="66", access_token="t66", currency="EUR"),
        make(spot=spot, network="facebook", account_id="77", access_token="t77", enabled=False),
    ]


def days_of(account_id):
    source = f"facebook:{account_id}"
    return sorted(Spend.objects.filter(source=source).values_list("day", flat=True))


def test_the_command_pulls_the_enabled_accounts_of_the_last_days(accounts, capsys):
    call_command("import_spend", "--days", "3")
    first = TODAY - datetime.timedelta(days=2)
    assert days_of("55") == [first + datetime.timedelta(n) for n in range(3)]
    assert days_of("66") == days_of("55") and days_of("77") == []
    # An account without its own currency reported has its own or the spot's.
    assert set(Spend.objects.filter(source="facebook:66").values_list("currency", flat=True)) == {
        "EUR"
    }
    out, err = capsys.readouterr()
    assert "3 spend row(s) over 3 day(s)" in out and "Spend of 2 ad account(s)" in out
    assert "100% 3/3" in err  # a progress bar per account


def test_the_command_takes_a_range_and_one_account(accounts, capsys):
    call_command(
        "import_spend", "--since", "2026-01-30", "--until", "2026-02-02", "--account", "55"
    )
    assert days_of("55")[0] == datetime.date(2026, 1, 30) and len(days_of("55")) == 4
    assert days_of("66") == []
    # Run again: the same days, one figure each.
    call_command(
        "import_spend", "--since", "2026-01-30", "--until", "2026-02-02", "--account", "act_55"
    )
    assert Spend.objects.count() == 4
    assert Spend.objects.get(day="2026-01-31").amount == Decimal("2.5")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "2", "--since", "2026-01-01"], "not both"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "before"),
        (["--since", "01.02.2026"], "is not a day"),
        (["--until", "2026-01-01"], "needs --since"),
        (["--days", "0"], "1 or more"),
        (["--account", "999999"], "No ad account"),
    ],
)
def test_the_command_refuses_bad_arguments(accounts, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_spend", *args)


def test_a_failing_account_is_named_and_the_others_still_import(accounts, standin, capsys):
    standin.answer(FB, 400, json.dumps({"error": {"message": "Unsupported get request."}}))
    with pytest.raises(CommandError, match="1 of 2 ad account"):
        call_command("import_spend", "--days", "1")
    assert "HTTP 400: Unsupported get request." in capsys.readouterr().out
    assert days_of("66") == [TODAY]
    assert AdAccount.objects.get(account_id="act_55").last_error.startswith("HTTP 400")


def test_no_account_is_told(db):
    with pytest.raises(CommandError, match="No enabled ad account"):
        call_command("import_spend")


def test_the_workers_pull_each_due_account_once_per_interval(accounts, settings):
    settings.SPEND_IMPORT_INTERVAL = 3600
    settings.SPEND_IMPORT_DAYS = 2
    periodic._next["spend"] = 0.0
    periodic.tick()  # what each pass of a delivery loop does
    assert days_of("55") == [TODAY - datetime.timedelta(days=1), TODAY]
    assert days_of("77") == []
    pulled = AdAccount.objects.get(account_id="act_55").last_imported
    assert pulled
    # Another worker's loop (or this one's next look) finds nothing due.
    periodic._next["spend"] = 0.0
    periodic.tick()
    assert AdAccount.objects.get(account_id="act_55").last_imported == pulled
    # An hour later it is due again.
    AdAccount.objects.update(last_imported=timezone.now() - datetime.timedelta(hours=2))
    periodic._next["spend"] = 0.0
    periodic.tick()
    assert AdAccount.objects.get(account_id="act_55").last_imported > pulled


# -- the admin --------------------------------------------------------------------


def test_the_token_is_never_shown_again_and_kept_when_left_empty(admin_client, spot):
    form = {
        "spot": spot.pk,
        "network": "facebook",
        "account_id": " act_9 ",
        "access_token": "EAAB-very-secret",
        "currency": "",
        "enabled": "on",
    }
    assert admin_client.post("/admin/tracker/adaccount/add/", form).status_code == 302
    account = AdAccount.objects.get()
    assert (account.account_id, account.access_token) == ("act_9", "EAAB-very-secret")
    page = admin_client.get(f"/admin/tracker/adaccount/{account.pk}/change/").content.decode()
    assert "EAAB-very-secret" not in page and "set; type to replace" in page
    listing = admin_client.get("/admin/tracker/adaccount/").content.decode()
    assert "EAAB-very-secret" not in listing
    url = f"/admin/tracker/adaccount/{account.pk}/change/"
    assert admin_client.post(url, {**form, "access_token": ""}).status_code == 302
    assert AdAccount.objects.get().access_token == "EAAB-very-secret"
    assert admin_client.post(url, {**form, "access_token": "new-one"}).status_code == 302
    assert AdAccount.objects.get().access_token == "new-one"
    bad = admin_client.post(url, {**form, "currency": "us1"})
    assert bad.status_code == 200 and "Three letters" in bad.content.decode()


def test_the_action_imports_seven_days_in_the_background_and_the_list_shows_how_it_went(
    admin_client, accounts, standin, settings
):
    settings.REDIS_URL = ""
    periodic._imports.clear()
    first, second, _ = accounts
    chosen = {"action": "import_spend_now", "_selected_action": [first.pk, second.pk]}
    response = admin_client.post("/admin/tracker/adaccount/", chosen, follow=True)
    assert "imported in the background" in response.content.decode()
    assert Spend.objects.count() == 0  # not in the request
    standin.answer(f"/{spend_api.FACEBOOK_VERSION}/act_66/insights", 400, "{}")
    periodic.tick()  # the delivery loop's next pass
    assert days_of("55") == [TODAY - datetime.timedelta(days=6 - n) for n in range(7)]
    listing = admin_client.get("/admin/tracker/adaccount/").content.decode()
    assert "HTTP 400" in listing  # the second account's error, beside its last import
    assert AdAccount.objects.get(pk=first.pk).last_error == ""

"""GET /api/report: the statistics as JSON with a spot's API key or a user's
report token, the same lines as the page's CSV, a manager's own figures only."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from crm import spend
from crm.models import Client, ReportSettings
from tracker.models import Spot

API = "/api/report"


@pytest.fixture
def figures(spot, team):
    """Casino bot: ann's client (c1, a 100 USD deposit) and bob's (c2), 30 USD spent
    on c1; another spot with a client of its own."""
    ann = Client.objects.create(spot=spot, geo="DE", advert_campaign_id="c1", manager=team["ann"])
    Client.objects.create(spot=spot, geo="BR", advert_campaign_id="c2", manager=team["bob"])
    ann.record_conversion("sale", Decimal("100"), "USD", "t1")
    row = {"campaign": "c1", "adset": "", "ad": "", "geo": "DE", "currency": "USD"}
    spend.replace_day("file:x", spot, timezone.localdate(), [{**row, "amount": Decimal("30")}])
    other = Spot.objects.create(name="Other", slug="other")
    Client.objects.create(spot=other, geo="PL", advert_campaign_id="o1")
    return spot


def take_token(client):
    response = client.post("/admin/crm/dailystat/token/")
    assert response.status_code == 200
    token = response.context["token"]
    assert token in response.content.decode()  # shown once, on this answer
    return token


def get(client, query="", **headers):
    response = client.get(f"{API}?{query}", headers=headers)
    assert response["Content-Type"] == "application/json"
    return response


def csv_lines(client, query):
    text = client.get(f"/admin/crm/dailystat/csv/?{query}").content.decode()
    return list(csv.reader(io.StringIO(text)))


def as_lines(body):
    """The JSON's header, lines and totals as the CSV writes them."""

    def text(v):
        return "" if v is None else str(v)

    lines = [[c["title"] for c in body["columns"]]]
    lines += [[text(v) for v in row.values()] for row in body["rows"]]
    return lines + [[text(v) for v in body["total"].values()]]


@pytest.mark.parametrize(
    "query",
    ["group=campaign", "group=campaign&then=geo&sort=-leads", "group=day&basis=click", ""],
)
def test_the_json_with_a_user_token_equals_the_csv(admin_client, figures, query):
    token = take_token(admin_client)
    response = get(admin_client.__class__(), query, authorization=f"Bearer {token}")
    assert response.status_code == 200
    body = response.json()
    assert as_lines(body) == csv_lines(admin_client, query)
    assert body["currency"] == "USD" and body["ok"] is True


def test_a_preset_names_the_days_in_the_installation_s_time_zone(client, figures):
    body = get(client, "preset=yesterday", x_api_key=figures.api_key).json()
    yesterday = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    assert (body["date_from"], body["date_to"]) == (yesterday, yesterday)
    assert body["rows"] == [] and body["total"]["leads"] == 0


def test_a_spot_key_reads_only_its_spot_with_cost(client, figures):
    body = get(client, "group=campaign", x_api_key=figures.api_key).json()
    rows = {r["campaign"]: r for r in body["rows"]}
    assert set(rows) == {"c1", "c2"}  # not the other spot's o1
    assert rows["c1"]["leads"] == 1 and rows["c1"]["cost"] == "30"
    assert rows["c1"]["profit"] == "70" and rows["c1"]["roi"] == "233.33"
    assert body["total"]["revenue"] == "100"
    by_bearer = get(client, "group=campaign", authorization=f"Bearer {figures.api_key}").json()
    assert by_bearer == body
    other = Spot.objects.get(slug="other")
    refused = get(client, f"spot={other.pk}", x_api_key=figures.api_key)
    assert refused.status_code == 403 and "only the spot" in refused.json()["error"]


def test_a_manager_s_token_reads_only_their_figures_in_their_columns(client, figures, team):
    client.force_login(team["ann"])
    token = take_token(client)
    client.post("/admin/crm/dailystat/columns/", {"columns": ["leads", "revenue"], "next": ""})
    client.logout()
    body = get(client, "group=campaign", authorization=f"Bearer {token}").json()
    assert [c["id"] for c in body["columns"]] == ["campaign", "leads", "revenue"]
    assert body["rows"] == [{"campaign": "c1", "leads": 1, "revenue": "100"}]
    # Cost has no manager: a manager's columns never include it.
    refused = get(client, "columns=leads,cost", authorization=f"Bearer {token}")
    assert refused.status_code == 400 and "'cost'" in refused.json()["error"]
    asked = get(client, "group=geo&columns=leads", authorization=f"Bearer {token}").json()
    assert asked["rows"] == [{"geo": "DE", "leads": 1}]


def test_a_manager_s_json_equals_their_csv(client, figures, team):
    client.force_login(team["ann"])
    token = take_token(client)
    for query in ("group=campaign", "group=day&then=geo", "group=manager"):
        body = get(client.__class__(), query, authorization=f"Bearer {token}").json()
        assert as_lines(body) == csv_lines(client, query)
        assert body["total"]["revenue"] == "100" and "cost" not in body["total"]


def test_a_new_token_replaces_the_old_one_and_only_its_hash_is_kept(admin_client, figures):
    first = take_token(admin_client)
    second = take_token(admin_client)
    kept = ReportSettings.objects.get().token_hash
    assert first not in kept and second not in kept and len(kept) == 64
    anonymous = admin_client.__class__()
    assert get(anonymous, "", authorization=f"Bearer {first}").status_code == 403
    assert get(anonymous, "", authorization=f"Bearer {second}").status_code == 200


def test_a_token_stops_working_when_its_user_may_no_longer_read(client, figures, team):
    client.force_login(team["bob"])
    token = take_token(client)
    team["bob"].is_active = False
    team["bob"].save()
    response = get(client.__class__(), "", authorization=f"Bearer {token}")
    assert response.status_code == 403 and "may not read" in response.json()["error"]


@pytest.mark.parametrize(
    ("query", "headers", "status", "words"),
    [
        ("", {}, 401, "report token"),
        ("", {"x_api_key": "nope"}, 403, "Unknown API key"),
        ("", {"authorization": "Bearer " + "x" * 5000}, 403, "Unknown"),
        ("date_from=2026-02-30", {"spot": True}, 400, "date_from"),
        ("date_from=2026-02-10&date_to=2026-02-01", {"spot": True}, 400, "is after"),
        ("group=nope", {"spot": True}, 400, "group"),
        ("columns=leads,zzz", {"spot": True}, 400, "'zzz'"),
        ("spot=abc", {"spot": True}, 403, "only the spot"),
        ("preset=someday", {"spot": True}, 400, "Unknown preset"),
    ],
)
def test_bad_requests_answer_json_4xx_with_a_message(
    client, figures, query, headers, status, words
):
    if headers.pop("spot", False):
        headers["x_api_key"] = figures.api_key
    response = get(client, query, **headers)
    assert response.status_code == status
    assert words in response.json()["error"] and response.json()["ok"] is False


def test_other_methods_are_refused_in_json(client, figures):
    response = client.post(API, headers={"x_api_key": figures.api_key})
    assert response.status_code == 405 and response["Allow"] == "GET"

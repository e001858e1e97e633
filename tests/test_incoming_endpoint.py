"""The incoming postback endpoint with the URLs of seeds 003 and 002."""

from decimal import Decimal

import pytest
from django.test import override_settings

from crm.models import Client, Conversion, CustomField, Message
from postbacks.models import IncomingPostback
from tracker.models import Spot


def url(spot, query=""):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback" + (f"?{query}" if query else "")


@pytest.fixture
def fields(spot):
    CustomField.objects.create(spot=spot, key="last_deposit", type=CustomField.MONEY)
    CustomField.objects.create(spot=spot, key="user_id", type=CustomField.NUMBER)


def test_a_registration_of_seed_003_records_a_reg(client, spot, lead):
    response = client.get(url(spot, f"tracker.event=registration&clickid={lead.click_id}"))
    assert response.status_code == 200
    body = response.json()
    conversion = Conversion.objects.get()
    assert body == {
        "ok": True,
        "status": "accepted",
        "conversion": conversion.pk,
        "goal": "reg",
        "duplicate": False,
        "warnings": [],
    }
    assert (conversion.client, conversion.goal.token, conversion.amount) == (lead, "reg", 0)
    row = IncomingPostback.objects.get()
    assert (row.status, row.http_status, row.spot, row.client, row.conversion) == (
        "accepted",
        200,
        spot,
        lead,
        conversion,
    )
    assert row.query == f"tracker.event=registration&clickid={lead.click_id}"
    assert row.method == "GET" and row.remote_addr == "127.0.0.1" and row.processed


def test_a_sale_with_cost_currency_and_fields_of_seed_003(client, spot, lead, fields):
    query = (
        f"clickid={lead.click_id}&tracker.event=sale&tracker.cost=150,50&tracker.currency=usd"
        "&fields.last_deposit=150,50&fields.user_id=777"
    )
    body = client.get(url(spot, query)).json()
    assert (body["status"], body["goal"], body["warnings"]) == ("accepted", "dep", [])
    conversion = Conversion.objects.get()
    assert (conversion.amount, conversion.currency) == (Decimal("150.50"), "USD")
    assert lead.field_values() == {"last_deposit": "150.50", "user_id": "777"}


def test_a_second_sale_is_a_repeat_deposit(client, spot, lead):
    for cost in ("10", "20"):
        client.get(url(spot, f"clickid={lead.click_id}&tracker.event=sale&tracker.cost={cost}"))
    tokens = list(Conversion.objects.order_by("id").values_list("goal__token", "amount"))
    assert tokens == [("dep", Decimal("10.00")), ("redep", Decimal("20.00"))]


def test_a_resale_with_a_tid_is_a_repeat_deposit_and_its_repeat_a_duplicate(client, spot, lead):
    query = f"tracker.event=resale&clickid={lead.click_id}&tracker.tid=ev-9&tracker.cost=5"
    first = client.get(url(spot, query)).json()
    again = client.get(url(spot, query))
    assert first["goal"] == "redep" and first["duplicate"] is False
    assert again.status_code == 200
    assert again.json() == {**first, "status": "duplicate", "duplicate": True}
    assert Conversion.objects.get().tid == "ev-9"
    assert list(IncomingPostback.objects.order_by("id").values_list("status", flat=True)) == [
        "accepted",
        "duplicate",
    ]


def test_seed_002_payout_with_sum_and_playerid(client, spot, lead):
    spot.goals.create(name="Payout", token="payout", message_template="")
    query = f"clickid={lead.click_id}&goal=payout&playerid=p-42&sum=99.90&ow=0"
    body = client.get(url(spot, query)).json()
    assert (body["status"], body["goal"]) == ("accepted", "payout")
    assert Conversion.objects.get().amount == Decimal("99.90")
    lead.refresh_from_db()
    assert lead.player_id == "p-42"


def test_the_client_is_found_by_the_team_trackers_click_id(client, spot, lead):
    body = client.get(url(spot, "clickid=trk-1&tracker.event=registration")).json()
    assert body["status"] == "accepted"
    assert Conversion.objects.get().client == lead


def test_our_click_id_wins_then_the_newest_client_with_the_trackers(client, spot, lead):
    Client.objects.create(spot=spot, cl_id="shared")
    newer = Client.objects.create(spot=spot, cl_id="shared")
    Client.objects.create(spot=spot, cl_id=lead.click_id)  # a tracker id equal to ours
    other_spot = Spot.objects.create(name="Other", slug="other")
    Client.objects.create(spot=other_spot, cl_id="shared")
    for click_id in ("shared", lead.click_id):
        query = f"clickid={click_id}&tracker.event=registration"
        assert client.get(url(spot, query)).json()["status"] == "accepted"
    assert sorted(c.client_id for c in Conversion.objects.all()) == sorted([newer.pk, lead.pk])


def test_a_post_with_a_form_body_or_json_body_works_too(client, spot, lead):
    form = client.post(
        url(spot),
        f"clickid={lead.click_id}&tracker.event=registration",
        content_type="application/x-www-form-urlencoded",
    )
    as_json = client.post(
        url(spot),
        {"clickid": lead.click_id, "tracker": {"event": "sale", "cost": 12.5}},
        content_type="application/json",
    )
    assert form.json()["goal"] == "reg"
    assert as_json.json()["goal"] == "dep"
    assert Conversion.objects.get(goal__token="dep").amount == Decimal("12.50")
    assert IncomingPostback.objects.filter(method="POST").count() == 2


def test_a_status_change_for_the_same_tid_updates_the_conversion(client, spot, lead):
    base = f"clickid={lead.click_id}&tracker.event=sale&tracker.cost=50&tracker.tid=t1"
    client.get(url(spot, base))
    changed = client.get(url(spot, base + "&status=rejected"))
    assert changed.status_code == 200
    assert changed.json()["status"] == "updated" and changed.json()["duplicate"] is False
    conversion = Conversion.objects.get()
    assert conversion.status == "rejected"
    row = IncomingPostback.objects.order_by("id").last()
    assert row.status == "updated" and "status approved -> rejected" in row.warnings
    # A retry of the original, without a status, does not undo the chargeback.
    assert client.get(url(spot, base)).json()["duplicate"] is True
    conversion.refresh_from_db()
    assert conversion.status == "rejected"


def test_a_changed_amount_for_the_same_tid_updates_it(client, spot, lead):
    spot.goals.filter(token="dep").update(repeat_mode="update")  # a new amount replaces
    base = f"clickid={lead.click_id}&tracker.event=sale&tracker.tid=t1&tracker.cost="
    client.get(url(spot, base + "50"))
    assert client.get(url(spot, base + "40")).json()["status"] == "updated"
    assert Conversion.objects.get().amount == Decimal("40.00")


def test_an_unknown_click_id_is_kept_as_unmatched(client, spot, lead):
    response = client.get(url(spot, "clickid=nobody&tracker.event=registration"))
    assert response.status_code == 202
    assert response.json()["status"] == "unmatched" and response.json()["ok"] is False
    row = IncomingPostback.objects.get()
    assert (row.status, row.http_status, row.spot) == ("unmatched", 202, spot)
    assert not Conversion.objects.exists()


def test_an_unknown_token_is_a_404_and_still_logged(client, spot):
    response = client.get("/api/postbacks/not-a-token/tracker-postback?clickid=x")
    assert response.status_code == 404
    assert "Unknown postback URL" in response.json()["error"]
    row = IncomingPostback.objects.get()
    assert (row.token, row.spot, row.status, row.query) == (
        "not-a-token",
        None,
        "rejected",
        "clickid=x",
    )


@pytest.mark.parametrize(
    "query, named",
    [
        ("tracker.event=sale&tracker.cost=12.5.0", "tracker.cost"),
        ("goal=dep&sum=lots", "sum"),
        ("tracker.event=sale&tracker.currency=dollars", "tracker.currency"),
        ("tracker.event=withdrawal", "withdrawal"),
        ("tracker.event=sale&status=maybe", "status"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, spot, lead, query, named):
    response = client.get(url(spot, f"clickid={lead.click_id}&{query}"))
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and named in body["error"]
    assert not Conversion.objects.exists()
    assert IncomingPostback.objects.get().error == body["error"]


def test_an_unknown_event_names_the_accepted_ones(client, spot, lead):
    error = client.get(url(spot, f"clickid={lead.click_id}&tracker.event=x")).json()["error"]
    assert "registration" in error and "resale" in error and "sale" in error


def test_an_untransformed_first_deposit_link_still_counts(client, spot, lead):
    query = f"tracker.event=first_deposit_&clickid={lead.click_id}"
    assert client.get(url(spot, query)).json()["goal"] == "dep"


def test_unknown_fields_and_wrong_types_are_warnings_and_the_rest_applies(
    client, spot, lead, fields
):
    query = (
        f"clickid={lead.click_id}&tracker.event=sale&tracker.cost=5"
        "&fields.user_id=abc&fields.nope=1&fields.last_deposit=5"
    )
    response = client.get(url(spot, query))
    assert response.status_code == 200
    warnings = response.json()["warnings"]
    assert len(warnings) == 2
    assert any("fields.user_id" in w and "not a number" in w for w in warnings)
    assert any("fields.nope" in w and "no custom field" in w for w in warnings)
    assert lead.field_values() == {"last_deposit": "5.00"}
    assert Conversion.objects.get().goal.token == "dep"
    assert IncomingPostback.objects.get().warnings == "\n".join(warnings)


def test_a_system_message_is_rendered_from_the_goal_template(client, spot, lead, fields):
    spot.goals.filter(token="dep").update(
        message_template="Deposit {sum} {currency} by player {player_id}, "
        "last {fields__last_deposit}"
    )
    query = (
        f"clickid={lead.click_id}&tracker.event=sale&tracker.cost=7,5&tracker.currency=eur"
        "&playerid=P1&fields.last_deposit=7.5"
    )
    client.get(url(spot, query))
    message = Message.objects.get()
    assert message.kind == Message.SYSTEM
    assert message.text == "Deposit 7.50 EUR by player P1, last 7.50"
    assert message.conversion == Conversion.objects.get()


def test_no_system_message_without_crm_or_for_a_duplicate(client, spot, lead):
    spot.goals.filter(token="reg").update(message_template="Registered {click_id}")
    query = f"clickid={lead.click_id}&tracker.event=registration"
    client.get(url(spot, query))
    client.get(url(spot, query))
    assert Message.objects.count() == 1
    spot.crm_enabled = False
    spot.save()
    client.get(url(spot, query.replace("registration", "resale")))
    assert Message.objects.count() == 1


def test_an_accepted_conversion_gets_its_deliveries(client, spot, lead):
    spot.goals.filter(token="dep").update(external_postback="https://t.example/?c={click_id}")
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=sale"))
    conversion = Conversion.objects.get()
    assert [d.external_goal.token for d in conversion.deliveries.all()] == ["dep"]
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=first_deposit"))
    assert conversion.deliveries.count() == 1  # a duplicate sends nothing again


def test_other_methods_are_refused_and_logged(client, spot, lead):
    response = client.put(url(spot, f"clickid={lead.click_id}&tracker.event=registration"))
    assert response.status_code == 405
    assert IncomingPostback.objects.get().method == "PUT"


@override_settings(INCOMING_MAX_STORED=100)
def test_a_long_query_is_processed_whole_and_stored_cut_with_a_note(client, spot, lead):
    query = f"clickid={lead.click_id}&tracker.event=registration&pad={'x' * 300}"
    assert client.get(url(spot, query)).status_code == 200
    row = IncomingPostback.objects.get()
    assert row.query == query[:100]
    assert f"Stored: query cut to 100 of {len(query)} characters." in row.warnings


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_a_413_and_its_beginning_is_kept(client, spot, lead):
    body = f"clickid={lead.click_id}&tracker.event=registration&pad={'y' * 2000}"
    response = client.post(url(spot), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    row = IncomingPostback.objects.get()
    assert body.startswith(row.body) and len(row.body) > 1000
    assert "over the upload limit" in row.warnings
    assert not Conversion.objects.exists()


def test_a_first_deposit_repeating_a_repeat_deposits_tid_is_its_duplicate(client, spot, lead):
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=sale&tracker.tid=a"))
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=resale&tracker.tid=b"))
    again = client.get(url(spot, f"clickid={lead.click_id}&tracker.event=first_deposit&tid=b"))
    assert again.status_code == 200
    assert (again.json()["goal"], again.json()["duplicate"]) == ("redep", True)
    assert Conversion.objects.count() == 2


@pytest.mark.parametrize(
    "body",
    [
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"a":' * 500 + "1" + "}" * 500,
        '{"clickid": [' + "[" * 100_000 + "]" * 100_000 + "]}",
        '{"sum": 1' + "0" * 5000 + "}",
        "[1, 2]",
        "{not json",
    ],
)
def test_a_json_body_that_is_no_postback_is_a_400(client, spot, body):
    response = client.post(url(spot), body, content_type="application/json")
    assert response.status_code == 400
    assert IncomingPostback.objects.get().status == "rejected"


def test_a_client_registers_once_whatever_the_tid(client, spot, lead):
    for tid in ("r1", "r2"):
        client.get(url(spot, f"clickid={lead.click_id}&tracker.event=registration&tid={tid}"))
    assert Conversion.objects.count() == 1

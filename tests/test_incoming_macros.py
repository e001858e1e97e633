"""A postback whose network left a macro unfilled is refused at once, naming
the macro and the parameter, instead of waiting 30 days for a client that
never comes (issue 22, point 8)."""

import pytest

from crm.models import Conversion, CustomField
from postbacks.incoming.process import replay
from postbacks.models import IncomingPostback
from tracker.models import Partner


def url(spot, query):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback?{query}"


MACROS = [
    "{sub1}",
    "{clickid}",
    "{{clickid}}",
    "{ sub_id1 }",
    "[SUBID]",
    "[[subid]]",
    "%subid%",
    "##clickid##",
    "#clickid#",
    "$clickid",
    "${clickid}",
    "<clickid>",
]


@pytest.mark.parametrize("macro", MACROS)
def test_a_click_id_that_is_a_macro_is_a_400_naming_it(client, spot, lead, macro):
    response = client.get(url(spot, ""), {"clickid": macro, "tracker.event": "sale"})
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["status"] == "rejected"
    assert body["error"].startswith(f"clickid is '{macro}', an unreplaced macro of the network")
    assert "did not fill in the click id" in body["error"]
    row = IncomingPostback.objects.get()
    assert (row.status, row.http_status, row.error) == ("rejected", 400, body["error"])
    assert row.click_id == ""  # nothing waits for it
    spot.refresh_from_db()
    assert spot.unmatched_until is None
    assert not Conversion.objects.exists()


@pytest.mark.parametrize(
    "clickid",
    ["a1b2c3", "trk-1", "abc%20def", "100%", "#1", "x{y}", "[1]2", "$", "{}", "sub1"],
)
def test_click_ids_that_only_look_odd_still_wait_as_unmatched(client, spot, clickid):
    response = client.get(url(spot, ""), {"clickid": clickid, "tracker.event": "sale"})
    assert response.status_code == 202
    assert IncomingPostback.objects.get().status == "unmatched"


@pytest.mark.parametrize(
    ("param", "macro", "meaning"),
    [
        ("tracker.tid", "{event_id}", "the transaction id"),
        ("tid", "[TID]", "the transaction id"),
        ("tracker.cost", "{amount}", "the amount"),
        ("sum", "%sum%", "the amount"),
        ("tracker.currency", "{currency}", "the currency"),
        ("status", "{status}", "the status"),
    ],
)
def test_a_macro_in_what_decides_the_conversion_is_refused_too(
    client, spot, lead, param, macro, meaning
):
    query = {"clickid": lead.click_id, "tracker.event": "sale", param: macro}
    response = client.get(url(spot, ""), query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(f"{param} is '{macro}', an unreplaced macro")
    assert f"did not fill in {meaning}" in error
    assert not Conversion.objects.exists()


def test_a_macro_event_names_the_event(client, spot, lead):
    response = client.get(url(spot, ""), {"clickid": lead.click_id, "goal": "{goal}"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("goal is '{goal}', an unreplaced macro")


def test_a_partners_own_click_id_parameter_is_checked(client, spot, lead):
    Partner.objects.create(spot=spot, name="1win", slug="1win", click_id_param="sub4")
    query = {"partner": "1win", "sub4": "{sub4}", "tracker.event": "registration"}
    response = client.get(url(spot, ""), query)
    assert response.status_code == 400
    assert response.json()["error"].startswith("sub4 is '{sub4}'")


def test_a_macro_player_id_or_field_is_ignored_with_a_warning(client, spot, lead):
    CustomField.objects.create(spot=spot, key="user_id")
    lead.player_id = "p-1"
    lead.save()
    query = {
        "clickid": lead.click_id,
        "tracker.event": "sale",
        "playerid": "{playerid}",
        "fields.user_id": "{user_id}",
    }
    body = client.get(url(spot, ""), query).json()
    assert body["status"] == "accepted"
    assert body["warnings"] == [
        "playerid is '{playerid}', an unreplaced macro of the network: ignored.",
        "fields.user_id is '{user_id}', an unreplaced macro of the network: ignored.",
    ]
    lead.refresh_from_db()
    assert lead.player_id == "p-1" and lead.field_values() == {}


def test_an_old_unmatched_macro_postback_is_rejected_when_replayed(client, spot, lead):
    row = IncomingPostback.objects.create(
        token=str(spot.postback_token),
        spot=spot,
        method="GET",
        path="/",
        query="clickid=%7Bsub1%7D&tracker.event=sale",
        status=IncomingPostback.UNMATCHED,
        click_id="{sub1}",
    )
    outcome = replay(row)
    row.refresh_from_db()
    assert (outcome.status, row.status) == ("rejected", "rejected")
    assert "'{sub1}', an unreplaced macro" in row.error

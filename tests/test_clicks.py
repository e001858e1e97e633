import json

import pytest

from crm.models import Client
from tracker.models import RegistrationLink, Spot


@pytest.fixture
def landing(spot):
    spot.target_url = "https://land.example.com/offer?c={{tracker.clickid}}&u={{fields.user_id}}"
    spot.save()
    return spot


def test_a_click_makes_a_client_and_lands_on_the_target_with_its_click_id(client, landing):
    response = client.get("/go/casino-bot?advert__campaign_id=c77&utm_source=fb&fbclid=F1&x=9")
    assert response.status_code == 302
    lead = Client.objects.get()
    assert response["Location"] == f"https://land.example.com/offer?c={lead.click_id}&u="
    assert len(lead.click_id) == 32


def test_a_click_keeps_attribution_ad_click_ids_and_other_params(client, landing):
    client.get(
        "/go/casino-bot?advert__campaign_id=c77&advert__pixel=px1&utm_source=fb"
        "&utm_campaign=summer&fbclid=F1&ttclid=T1&gclid=G1&cl_id=trk9&geo=de&x=9"
    )
    lead = Client.objects.get()
    assert lead.advert_campaign_id == "c77"
    assert lead.advert_pixel == "px1"
    assert lead.cl_id == "trk9"
    assert lead.geo == "DE"
    assert lead.params == {
        "utm_source": "fb",
        "utm_campaign": "summer",
        "fbclid": "F1",
        "ttclid": "T1",
        "gclid": "G1",
        "x": "9",
    }


def test_two_clicks_make_two_clients_with_different_click_ids(client, landing):
    client.get("/go/casino-bot")
    client.get("/go/casino-bot")
    assert len(set(Client.objects.values_list("click_id", flat=True))) == 2


def test_a_spot_without_target_url_answers_409_and_makes_no_client(client, spot):
    response = client.get("/go/casino-bot")
    assert response.status_code == 409
    assert "no target URL" in response.json()["error"]
    assert not Client.objects.exists()


def test_an_unknown_spot_answers_404_json(client, db):
    response = client.get("/go/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "No spot 'nope'."


def post_client(client, spot, data, key=None):
    return client.post(
        "/api/clients",
        data=json.dumps(data) if not isinstance(data, str) else data,
        content_type="application/json",
        HTTP_X_API_KEY=spot.api_key if key is None else key,
    )


def test_a_bot_registers_a_client_once_per_user_id(client, spot):
    data = {
        "user_id": 4242,
        "username": "ann_tg",
        "name": "Ann",
        "geo": "br",
        "advert": {"campaign_id": "c1", "pixel": "p9"},
        "params": {"start": "promo"},
    }
    first = post_client(client, spot, data)
    again = post_client(client, spot, {**data, "name": "Changed"})
    assert first.status_code == 201 and first.json()["created"] is True
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["click_id"] == first.json()["click_id"]
    lead = Client.objects.get()
    assert (lead.user_id, lead.username, lead.name, lead.geo) == (4242, "ann_tg", "Ann", "BR")
    assert (lead.advert_campaign_id, lead.advert_pixel) == ("c1", "p9")
    assert lead.params == {"start": "promo"}


def test_the_bot_gets_the_clients_registration_links(client, spot):
    RegistrationLink.objects.create(
        spot=spot, name="Signup", base_url="https://p.example/r?c={{tracker.clickid}}"
    )
    answer = post_client(client, spot, {"user_id": 7}).json()
    assert answer["links"] == {"Signup": f"https://p.example/r?c={answer['click_id']}"}


def test_the_same_user_id_on_another_spot_is_another_client(client, spot):
    other = Spot.objects.create(name="Other", slug="other")
    post_client(client, spot, {"user_id": 1})
    post_client(client, other, {"user_id": 1})
    assert Client.objects.count() == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "The body is not valid JSON."),
        ([1, 2], "The body must be a JSON object."),
        ({"name": "x"}, "user_id is required and must be an integer (the Telegram user id)."),
        ({"user_id": 1, "advert": {"colour": "red"}}, "advert.colour is not known."),
        ({"user_id": 1, "params": [1]}, "params must be an object of names and values."),
        ({"user_id": 1, "geo": "x" * 11}, "geo is longer than 10 characters."),
    ],
)
def test_bad_bot_input_is_a_400_naming_the_problem(client, spot, body, message):
    response = post_client(client, spot, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert not Client.objects.exists()


def test_a_wrong_api_key_is_refused_and_a_missing_one_asked_for(client, spot):
    assert post_client(client, spot, {"user_id": 1}, key="wrong").status_code == 403
    response = post_client(client, spot, {"user_id": 1}, key="")
    assert response.status_code == 401
    assert "X-Api-Key" in response.json()["error"]
    assert not Client.objects.exists()


def test_a_regenerated_api_key_replaces_the_old_one(client, spot):
    old = spot.api_key
    spot.regenerate_api_key()
    assert post_client(client, spot, {"user_id": 1}, key=old).status_code == 403
    assert post_client(client, spot, {"user_id": 1}).status_code == 201


def test_the_spot_admin_shows_the_api_key_and_regenerates_it(admin_client, spot):
    page = admin_client.get(f"/admin/tracker/spot/{spot.pk}/change/").content.decode()
    assert spot.api_key in page
    old = spot.api_key
    admin_client.post(f"/admin/tracker/spot/{spot.pk}/regenerate-api-key/")
    spot.refresh_from_db()
    assert spot.api_key != old

"""Who may call a spot's incoming URL, and how they are answered (spot or partner)."""

import pytest
from django.test import override_settings

from crm.models import Conversion
from postbacks.models import IncomingPostback
from tracker.models import Partner


def url(spot, query):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback?{query}"


@pytest.fixture
def partner(spot):
    return Partner.objects.create(
        spot=spot,
        name="1win",
        slug="onewin",
        click_id_param="sub4",
        status_map="confirmed = approved\nhold = pending",
        plain_answer="OK",
    )


def test_a_caller_outside_the_allowlist_gets_a_403_and_is_logged(client, spot, lead):
    spot.allowed_ips = "10.0.0.0/8"
    spot.save()
    query = f"clickid={lead.click_id}&tracker.event=registration"
    refused = client.get(url(spot, query))
    assert refused.status_code == 403
    assert "127.0.0.1" in refused.json()["error"]
    assert IncomingPostback.objects.get().status == "rejected"
    allowed = client.get(url(spot, query), REMOTE_ADDR="10.1.2.3")
    assert allowed.status_code == 200
    assert Conversion.objects.count() == 1


def test_a_partners_allowlist_is_used_when_the_partner_is_named(client, spot, lead, partner):
    spot.allowed_ips = "10.0.0.0/8"
    spot.save()
    partner.allowed_ips = "192.0.2.7"
    partner.save()
    query = f"clickid={lead.click_id}&tracker.event=registration&partner=onewin"
    assert client.get(url(spot, query), REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get(url(spot, query), REMOTE_ADDR="10.1.2.3").status_code == 403


def test_a_spot_may_answer_with_plain_text(client, spot, lead):
    spot.plain_answer = "OK"
    spot.save()
    response = client.get(url(spot, f"clickid={lead.click_id}&tracker.event=registration"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"OK"
    # Errors stay JSON so a person debugging the link sees what is wrong.
    assert client.get(url(spot, "tracker.event=registration")).json()["ok"] is False


def test_a_partner_brings_its_click_id_param_status_words_and_answer(client, spot, lead, partner):
    query = f"sub4={lead.click_id}&tracker.event=sale&tracker.tid=x1&status=hold&partner=onewin"
    response = client.get(url(spot, query))
    assert response.content == b"OK"
    assert Conversion.objects.get().status == "pending"
    client.get(url(spot, query.replace("hold", "confirmed")))
    assert Conversion.objects.get().status == "approved"


def test_a_spots_status_map_translates_the_networks_words(client, spot, lead):
    spot.status_map = "declined = rejected"
    spot.save()
    query = f"clickid={lead.click_id}&tracker.event=sale&tracker.status=declined"
    assert client.get(url(spot, query)).status_code == 200
    assert Conversion.objects.get().status == "rejected"


def test_an_unknown_partner_is_a_400(client, spot, lead, partner):
    response = client.get(url(spot, f"clickid={lead.click_id}&tracker.event=sale&partner=x"))
    assert response.status_code == 400
    assert "onewin" in response.json()["error"]


@override_settings(PROXY_HOPS=1)
def test_behind_our_proxy_the_allowlist_checks_the_address_it_saw(client, spot, lead):
    spot.allowed_ips = "192.0.2.0/24"
    spot.save()
    query = f"clickid={lead.click_id}&tracker.event=registration"
    forged = client.get(url(spot, query), HTTP_X_FORWARDED_FOR="192.0.2.9, 203.0.113.5")
    assert forged.status_code == 403
    real = client.get(url(spot, query), HTTP_X_FORWARDED_FOR="203.0.113.5, 192.0.2.9")
    assert real.status_code == 200
    assert IncomingPostback.objects.order_by("id").last().remote_addr == "192.0.2.9"

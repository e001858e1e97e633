"""A spot or partner that requires signed requests (Standard Webhooks v1):
only JSON POSTs signed with its secret get in; repeats of an id are duplicates."""

import datetime
import json
import re

import pytest
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from crm.models import Client, Conversion
from postbacks.delivery.fanout import accept
from postbacks.incoming.process import replay
from postbacks.models import IncomingPostback, OutgoingPostback
from tests.receiver import drain
from tests.test_signed_outgoing import form_data
from tracker.models import Partner, Spot
from tracker.signing import new_secret

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def url(spot):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback"


@pytest.fixture
def signed_spot(spot):
    spot.require_signature, spot.signing_secret = True, new_secret()
    spot.save()
    return spot


def signed_headers(secret, body, msg_id="msg_1", at=None):
    at = at or datetime.datetime.now(datetime.UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def post(client, spot, data, headers=None, **extra):
    body = json.dumps(data)
    return client.post(
        url(spot), body, content_type="application/json", headers=headers or {}, **extra
    )


def registration(lead, **more):
    return {"clickid": lead.click_id, "tracker.event": "registration", **more}


def test_a_signed_json_post_is_accepted(client, signed_spot, lead):
    body = json.dumps(registration(lead))
    response = post(
        client, signed_spot, registration(lead), signed_headers(signed_spot.signing_secret, body)
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "accepted"
    row = IncomingPostback.objects.get()
    assert row.status == "accepted" and row.webhook_id == "msg_1"
    assert Conversion.objects.count() == 1


def refused(response, says):
    assert response.status_code == 401
    answer = response.json()
    assert answer["ok"] is False and answer["status"] == "rejected"
    assert says in answer["error"], answer["error"]
    row = IncomingPostback.objects.order_by("pk").last()
    assert row.status == "rejected" and row.http_status == 401 and row.webhook_id == ""
    assert not Conversion.objects.exists()


def test_an_unsigned_post_is_a_401_with_the_reason(client, signed_spot, lead):
    refused(post(client, signed_spot, registration(lead)), "send the webhook-id")


def test_a_get_is_refused_even_with_the_token(client, signed_spot, lead):
    response = client.get(url(signed_spot), registration(lead))
    refused(response, "accepts only signed JSON POSTs")


def test_a_form_post_is_refused(client, signed_spot, lead):
    response = client.post(url(signed_spot), registration(lead))
    refused(response, "accepts only signed JSON POSTs")


def test_a_tampered_body_fails(client, signed_spot, lead):
    headers = signed_headers(signed_spot.signing_secret, json.dumps(registration(lead)))
    tampered = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "999"}
    refused(post(client, signed_spot, tampered, headers), "webhook-signature does not match")


def test_another_secret_fails(client, signed_spot, lead):
    body = json.dumps(registration(lead))
    refused(
        post(client, signed_spot, registration(lead), signed_headers(new_secret(), body)),
        "does not match",
    )


def test_a_timestamp_over_five_minutes_old_fails(client, signed_spot, lead):
    body = json.dumps(registration(lead))
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=301)
    headers = signed_headers(signed_spot.signing_secret, body, at=old)
    refused(post(client, signed_spot, registration(lead), headers), "at most 300 s")
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=240)
    headers = signed_headers(signed_spot.signing_secret, body, msg_id="msg_2", at=recent)
    assert post(client, signed_spot, registration(lead), headers).status_code == 200


def test_a_repeated_id_is_a_duplicate_answered_200_and_does_nothing(client, signed_spot, lead):
    deposit = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "10"}
    body = json.dumps(deposit)
    headers = signed_headers(signed_spot.signing_secret, body, msg_id="msg_dep")
    assert post(client, signed_spot, deposit, headers).json()["status"] == "accepted"
    # The sender's retry: same id, a fresh timestamp and signature.
    again = post(
        client,
        signed_spot,
        deposit,
        signed_headers(signed_spot.signing_secret, body, msg_id="msg_dep"),
    )
    assert again.status_code == 200
    answer = again.json()
    assert answer["status"] == "duplicate" and answer["duplicate"] is True
    assert "msg_dep" in answer["warnings"][0]
    assert Conversion.objects.count() == 1
    # Another message of the same deposit (no tid) is a second deposit.
    other = signed_headers(signed_spot.signing_secret, body, msg_id="msg_dep_2")
    assert post(client, signed_spot, deposit, other).json()["status"] == "accepted"
    assert Conversion.objects.count() == 2


def test_a_forged_repeat_of_an_id_does_not_block_the_real_one(client, signed_spot, lead):
    body = json.dumps(registration(lead))
    forged = signed_headers(new_secret(), body, msg_id="msg_9")
    assert post(client, signed_spot, registration(lead), forged).status_code == 401
    real = signed_headers(signed_spot.signing_secret, body, msg_id="msg_9")
    assert post(client, signed_spot, registration(lead), real).json()["status"] == "accepted"


def test_a_partner_that_requires_signatures_checks_its_own_secret(client, spot, lead):
    partner = Partner.objects.create(
        spot=spot,
        name="Own network",
        slug="own",
        require_signature=True,
        signing_secret=new_secret(),
    )
    data = registration(lead, partner="own")
    body = json.dumps(data)
    refused(post(client, spot, data, signed_headers(new_secret(), body)), "Own network")
    ok = post(client, spot, data, signed_headers(partner.signing_secret, body, msg_id="m2"))
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"
    # Without the partner the spot's own rules apply: no signature asked.
    assert client.get(url(spot), registration(lead)).status_code == 200


def test_a_signed_unmatched_postback_replays_when_its_client_appears(
    client, signed_spot, django_capture_on_commit_callbacks
):
    data = {"clickid": "later-1", "tracker.event": "registration"}
    body = json.dumps(data)
    waiting = post(client, signed_spot, data, signed_headers(signed_spot.signing_secret, body))
    assert waiting.json()["status"] == "unmatched"
    row = IncomingPostback.objects.get()
    assert row.webhook_id == "msg_1"
    # Its signature was checked when it came: the replay trusts that.
    with django_capture_on_commit_callbacks(execute=True):
        Client.objects.create(spot=Spot.objects.get(pk=signed_spot.pk), cl_id="later-1")
    row.refresh_from_db()
    assert row.status == "accepted", row.error
    assert Conversion.objects.count() == 1


def test_an_unsigned_rejected_row_stays_rejected_on_replay(client, signed_spot, lead):
    post(client, signed_spot, registration(lead))
    outcome = replay(IncomingPostback.objects.get())
    assert outcome.http_status == 401 and "not verified" in outcome.error
    assert not Conversion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_our_own_signed_postback_gets_into_a_spot_that_requires_signatures(live_server, outgoing):
    receiving = Spot.objects.create(name="Team hub", slug="hub", currency="USD")
    receiving.require_signature, receiving.signing_secret = True, new_secret()
    receiving.save()
    hub_lead = Client.objects.create(spot=receiving, name="Hub lead")
    sending = Spot.objects.create(name="Bot", slug="bot", currency="USD")
    OutgoingPostback.objects.create(
        spot=sending,
        name="To the hub",
        url=live_server.url + url(receiving),
        method="POST",
        body_format="json",
        body=f'{{"clickid": "{hub_lead.click_id}", "tracker.event": "registration"}}',
        signed=True,
        signing_secret=receiving.signing_secret,
        all_users=True,
    )
    accept(Client.objects.create(spot=sending, name="Bot lead"), "reg")
    drain()
    row = IncomingPostback.objects.get()
    assert row.status == "accepted", row.error
    assert row.webhook_id == str(OutgoingPostback.objects.get().deliveries.get().pk)


@pytest.mark.parametrize("model", ["spot", "partner"])
def test_the_admin_generates_a_secret_and_shows_it_once(admin_client, spot, model):
    obj = spot if model == "spot" else Partner.objects.create(spot=spot, name="Net", slug="net")
    change = reverse(f"admin:tracker_{model}_change", args=[obj.pk])
    page = admin_client.get(change)
    assert "Generate signing secret" in page.content.decode()
    # Requiring signatures without a secret makes one, shown on the next page.
    saved = admin_client.post(change, form_data(page, require_signature="on"), follow=True)
    assert saved.redirect_chain, saved.context["adminform"].form.errors
    obj.refresh_from_db()
    assert obj.require_signature
    assert SECRET_RE.findall(saved.content.decode()) == [obj.signing_secret]
    first = obj.signing_secret
    assert first.removeprefix("whsec_") not in admin_client.get(change).content.decode()

    generate = reverse(f"admin:tracker_{model}_signing_secret", args=[obj.pk])
    assert admin_client.get(generate).status_code == 405
    made = admin_client.post(generate, follow=True)
    obj.refresh_from_db()
    assert obj.signing_secret != first
    assert SECRET_RE.findall(made.content.decode()) == [obj.signing_secret]
    assert (
        obj.signing_secret.removeprefix("whsec_") not in admin_client.get(change).content.decode()
    )

"""A new client is an event: sent, by any path it arrives on, to the targets
that pick the spot's "New lead" goal, and to nothing else (issue 10, point 1)."""

import json

import pytest
from django.core.management import call_command

from crm.models import Client, Conversion
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def wants_leads(spot, receiver, settings):
    """A spot as seed 001 sets it up: its Facebook server pixel in "New" (Lead),
    a postback of leads to a network, and an external postback of the goal."""
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.target_url = "https://t.me/casino_bot?start={{tracker.clickid}}"
    spot.save()
    lead = spot.goals.get(token="lead")
    lead.facebook_event = "Lead"
    lead.external_postback = receiver.url + "/ext?e={action}&c={click_id}"
    lead.save()
    network = OutgoingPostback.objects.create(
        spot=spot, name="network", url=receiver.url + "/lead?c={click}&g={goal}", all_users=True
    )
    network.goals.set([lead])
    OutgoingPostback.objects.create(spot=spot, name="every goal", url=receiver.url + "/all")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    return receiver


def received(receiver, n):
    got = receiver.wait_for(n)
    out = {}
    for r in got:
        if r.path.startswith("/v18.0/"):
            [event] = json.loads(form_fields(r.body)["data"][0])
            out["pixel"] = event["event_name"]
            out["user_data"] = sorted(event["user_data"])
        else:
            out[r.path.split("?")[0]] = r.path
    return out


def test_a_click_sends_the_lead_to_the_targets_that_pick_it(client, spot, wants_leads):
    answer = client.get("/go/casino-bot?fbclid=F1", HTTP_USER_AGENT="Mozilla/5.0")
    assert answer.status_code == 302
    drain()
    lead = Client.objects.get()
    got = received(wants_leads, 3)
    assert got == {
        "/lead": f"/lead?c={lead.click_id}&g=New%20lead",
        "/ext": f"/ext?e=lead&c={lead.click_id}",
        "pixel": "Lead",
        "user_data": ["client_ip_address", "client_user_agent", "external_id", "fbc"],
    }  # and not the postback that sends "every goal": leads are sent only when picked
    assert Delivery.objects.filter(status=Delivery.SUCCESS).count() == 3


def test_the_bot_api_sends_a_lead_once_per_client(client, spot, wants_leads):
    headers = {"HTTP_X_API_KEY": spot.api_key, "content_type": "application/json"}
    for expected in (201, 200):  # the bot's retry finds the same client
        answer = client.post("/api/clients", {"user_id": 7}, **headers)
        assert answer.status_code == expected
    drain()
    assert len(wants_leads.wait_for(3)) == 3
    assert Conversion.objects.filter(goal__token="lead").count() == 1


def test_an_import_sends_leads_unless_back_filling(spot, wants_leads, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("user_id,name\n1,Ann\n2,Bob\n", encoding="utf-8")
    call_command("import_clients", str(path), "--spot", spot.slug, "--no-postbacks")
    assert not Delivery.objects.exists() and Client.objects.count() == 2
    path.write_text("user_id,name\n3,Cid\n", encoding="utf-8")
    call_command("import_clients", str(path), "--spot", spot.slug)
    drain()
    assert len(wants_leads.wait_for(3)) == 3
    assert set(Delivery.objects.values_list("conversion__client__name", flat=True)) == {"Cid"}


def test_a_client_added_in_the_admin_is_a_lead_too(admin_client, spot, wants_leads):
    from tests.test_client_card import client_form

    form = client_form(Client(spot=spot, name="Walk-in"))
    answer = admin_client.post("/admin/crm/client/add/", form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert Delivery.objects.count() == 3


def test_a_spot_that_does_not_want_leads_sends_nothing_new(client, spot, receiver):
    spot.target_url = "https://t.me/casino_bot"
    spot.save()
    OutgoingPostback.objects.create(spot=spot, name="every goal", url=receiver.url + "/all")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    # Its New lead goal names no event for its pixel (the default is Lead).
    spot.goals.filter(token="lead").update(facebook_event="")
    client.get("/go/casino-bot")
    assert not Conversion.objects.exists() and not Delivery.objects.exists()


def test_the_lead_shows_in_the_clients_timeline(client, admin_client, spot, wants_leads):
    client.get("/go/casino-bot")
    drain()  # the click's lead event is the workers'
    lead = Client.objects.get()
    page = admin_client.get(f"/admin/crm/client/{lead.pk}/change/").content.decode()
    assert "New lead" in page

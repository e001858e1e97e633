"""A partner's locked postback (made by a preset) is sent for every event of its
goals whatever the other settings, as seed 000 says, and the admin does not
offer those settings on it (issue 23, point 6)."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from crm.models import Client
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain
from tracker.presets import apply_preset

IGNORED = ["send_mode", "reengagement_window", "all_users"]


@pytest.fixture
def keitaro(spot, presets, receiver):
    apply_preset(presets["keitaro"], spot, outgoing_base=receiver.url + "/k")
    return OutgoingPostback.objects.get(locked=True)


def sale(client, spot, lead, tid):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "5"}
    assert client.get(url, params | {"tracker.tid": tid}).status_code == 200


@pytest.mark.usefixtures("outgoing")
def test_a_locked_postback_ignores_first_event_only_and_the_window(client, spot, receiver, keitaro):
    keitaro.first_event_only = True
    keitaro.reengagement_window = datetime.timedelta(hours=1)
    keitaro.save()
    lead = Client.objects.create(spot=spot, cl_id="kt-1")
    # The client arrived two days ago: every event is out of the window.
    Client.objects.filter(pk=lead.pk).update(created=timezone.now() - datetime.timedelta(days=2))
    lead.refresh_from_db()
    for tid in ("t1", "t2", "t3"):  # a deposit, then two repeat deposits
        sale(client, spot, lead, tid)
    drain()
    tids = sorted(parse_qs(urlsplit(r.path).query)["tid"][0] for r in receiver.wait_for(3))
    assert tids == ["t1", "t2", "t3"]
    assert not Delivery.objects.filter(status=Delivery.SKIPPED).exists()


@pytest.mark.usefixtures("outgoing")
def test_an_unlocked_postback_keeps_them(client, spot, receiver, keitaro):
    own = OutgoingPostback.objects.create(
        spot=spot,
        name="own",
        url=receiver.url + "/own?tid={tid}",
        all_users=True,
        first_event_only=True,
        reengagement_window=datetime.timedelta(hours=1),
    )
    lead = Client.objects.create(spot=spot, cl_id="kt-1")
    for tid in ("t1", "t2", "t3"):
        sale(client, spot, lead, tid)
    drain()
    reasons = list(
        Delivery.objects.filter(postback=own, status=Delivery.SKIPPED).values_list(
            "last_error", flat=True
        )
    )
    assert reasons == ["Not the client's first event of this goal (first event only)."]


def test_the_admin_does_not_offer_them_on_a_locked_postback(admin_client, spot, keitaro):
    page = admin_client.get(f"/admin/postbacks/outgoingpostback/{keitaro.pk}/change/")
    text = page.content.decode()
    for name in IGNORED:
        assert f'name="{name}"' not in text, name
    assert "first event only, the re-engagement window and the attribution do not" in text
    own = OutgoingPostback.objects.create(spot=spot, name="own", url="https://a.example/")
    text = admin_client.get(f"/admin/postbacks/outgoingpostback/{own.pk}/change/").content
    for name in IGNORED:
        assert f'name="{name}"'.encode() in text, name


def test_a_locked_postback_still_saves_in_the_admin(admin_client, spot, keitaro):
    form = admin_client.get(f"/admin/postbacks/outgoingpostback/{keitaro.pk}/change/")
    data = {}
    for field in form.context["adminform"].form:
        value = field.value()
        if value is None or value is False:
            continue
        data[field.html_name] = value if value is not True else "on"
    data["name"] = "Keitaro renamed"
    response = admin_client.post(f"/admin/postbacks/outgoingpostback/{keitaro.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    keitaro.refresh_from_db()
    assert keitaro.name == "Keitaro renamed" and keitaro.all_users and keitaro.locked

"""A conversion's status changes are events: each target says which statuses
it is sent, a change makes a delivery of its own with what it was before, a
repeat makes none (issue 10, point 2)."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from crm.models import Message
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain, form_fields
from tracker.models import Pixel

pytestmark = pytest.mark.usefixtures("outgoing")

REPORT = "/pb?s={status}&was={previous_status}&sum={sum}&was_sum={previous_sum}"


@pytest.fixture
def targets(spot, receiver, settings):
    settings.POSTBACKS_PIXEL_URLS = {n: receiver.url for n, _ in Pixel.NETWORKS}
    spot.goals.filter(token="dep").update(facebook_event="Purchase")
    every = OutgoingPostback.objects.create(spot=spot, name="every", url=receiver.url + REPORT)
    approved = OutgoingPostback.objects.create(
        spot=spot,
        name="approved only",
        url=receiver.url + "/approved?s={status}",
        send_pending=False,
        send_rejected=False,
    )
    pixel = Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    return every, approved, pixel


def postback(client, spot, lead, status, amount="50"):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.tid": "t1"}
    answer = client.get(url, params | {"tracker.status": status, "tracker.cost": amount})
    assert answer.status_code == 200, answer.content
    drain()
    return answer.json()["status"]


def sent(receiver):
    """What arrived since the last look: (target, query) per request."""
    got = [(urlsplit(r.path).path, r) for r in receiver.requests]
    receiver.requests.clear()
    out = []
    for path, request in got:
        if path == "/pb":
            out.append(("every", parse_qs(urlsplit(request.path).query, keep_blank_values=True)))
        elif path == "/approved":
            out.append(("approved only", parse_qs(urlsplit(request.path).query)))
        else:
            data = json.loads(form_fields(request.body)["data"][0])
            out.append(("pixel", data[0]["event_name"]))
    return sorted(out, key=lambda x: x[0])


def test_pending_then_approved_then_charged_back(client, spot, lead, receiver, targets):
    assert postback(client, spot, lead, "pending") == "accepted"
    # Pixels and the approved-only postback hold off a pending deposit.
    assert sent(receiver) == [
        ("every", {"s": ["pending"], "was": [""], "sum": ["50.00"], "was_sum": [""]})
    ]
    assert postback(client, spot, lead, "approved") == "updated"
    assert sent(receiver) == [
        ("approved only", {"s": ["approved"]}),
        ("every", {"s": ["approved"], "was": ["pending"], "sum": ["50.00"], "was_sum": ["50.00"]}),
        ("pixel", "Purchase"),
    ]
    assert postback(client, spot, lead, "rejected") == "updated"  # a chargeback
    assert sent(receiver) == [
        ("every", {"s": ["rejected"], "was": ["approved"], "sum": ["50.00"], "was_sum": ["50.00"]})
    ]
    assert postback(client, spot, lead, "rejected") == "duplicate"
    assert sent(receiver) == []
    ids = list(Delivery.objects.values_list("pk", flat=True))
    assert len(ids) == len(set(ids)) == 5
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.SUCCESS}


def test_a_new_amount_is_sent_with_the_old_one(client, spot, lead, receiver, targets):
    spot.goals.filter(token="dep").update(repeat_mode="update")  # a new amount replaces
    postback(client, spot, lead, "approved", amount="50")
    sent(receiver)
    assert postback(client, spot, lead, "approved", amount="45.5") == "updated"
    every = [q for name, q in sent(receiver) if name == "every"]
    assert every == [
        {"s": ["approved"], "was": ["approved"], "sum": ["45.50"], "was_sum": ["50.00"]}
    ]


def test_the_chat_hears_of_a_status_change_when_the_template_names_the_status(
    client, spot, lead, targets
):
    dep = spot.goals.get(token="dep")
    dep.message_template = "Deposit {sum}: {status}"
    dep.save()
    postback(client, spot, lead, "pending")
    postback(client, spot, lead, "approved")
    texts = list(Message.objects.filter(client=lead).order_by("id").values_list("text", flat=True))
    assert texts == ["Deposit 50.00: pending", "Deposit 50.00: approved"]
    dep.message_template = "Deposit {sum}"  # says nothing of the status
    dep.save()
    postback(client, spot, lead, "rejected")
    assert Message.objects.filter(client=lead).count() == 2


def ticked(page):
    """{checkbox name: ticked} of the send_* boxes of an admin page."""
    boxes = re.findall(r'<input type="checkbox" name="([^"]*send_[a-z]+)"([^>]*)>', page)
    return {name: "checked" in rest for name, rest in boxes}


def test_the_admin_offers_the_statuses_with_sensible_defaults(admin_client, spot):
    page = admin_client.get("/admin/postbacks/outgoingpostback/add/").content.decode()
    # A tracker hears of every status; an ad network of approved ones only.
    assert ticked(page) == {"send_approved": True, "send_pending": True, "send_rejected": True}
    page = admin_client.get(f"/admin/tracker/spot/{spot.pk}/change/").content.decode()
    assert ticked(page) == {
        "pixels-__prefix__-send_approved": True,
        "pixels-__prefix__-send_pending": False,
        "pixels-__prefix__-send_rejected": False,
    }

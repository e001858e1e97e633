"""A conversion changed in the admin (CRM › Conversions) makes the events a
network's postback makes: the partner hears of the new status with the old
one, the chat too; an edit of neither status nor amount sends nothing
(issue 23, point 3)."""

from urllib.parse import parse_qs, urlsplit

import pytest

from crm.models import Conversion, Message
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")

REPORT = "/pb?s={status}&was={previous_status}&sum={sum}&was_sum={previous_sum}&tid={tid}"


@pytest.fixture
def partner(spot, receiver):
    return OutgoingPostback.objects.create(spot=spot, name="partner", url=receiver.url + REPORT)


@pytest.fixture
def deposit(client, spot, lead, partner, receiver):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.tid": "t1"}
    assert client.get(url, params | {"tracker.cost": "70"}).status_code == 200
    drain()
    receiver.wait_for(1)
    receiver.requests.clear()
    return Conversion.objects.get(tid="t1")


def form_data(admin_client, url):
    """What the admin's change form posts back as it stands."""
    form = admin_client.get(url).context["adminform"].form
    data = {}
    for field in form:
        value = field.value()
        if value is not None:
            data[field.html_name] = value
    return data


def edit(admin_client, conversion, **changes):
    url = f"/admin/crm/conversion/{conversion.pk}/change/"
    response = admin_client.post(url, form_data(admin_client, url) | changes)
    assert response.status_code == 302, response.context["adminform"].form.errors
    drain()


def queries(receiver, count):
    got = receiver.wait_for(count)
    return [parse_qs(urlsplit(r.path).query, keep_blank_values=True) for r in got]


def test_a_status_changed_in_the_admin_reaches_the_partner(admin_client, deposit, receiver):
    edit(admin_client, deposit, status="rejected")
    assert queries(receiver, 1) == [
        {
            "s": ["rejected"],
            "was": ["approved"],
            "sum": ["70.00"],
            "was_sum": ["70.00"],
            "tid": ["t1"],
        }
    ]
    delivery = Delivery.objects.get(event_status="rejected")
    assert delivery.status == Delivery.SUCCESS and delivery.previous_status == "approved"
    deposit.refresh_from_db()
    assert deposit.status == "rejected"


def test_an_amount_changed_in_the_admin_is_sent_with_the_old_one(admin_client, deposit, receiver):
    edit(admin_client, deposit, amount="65.5")
    assert queries(receiver, 1) == [
        {
            "s": ["approved"],
            "was": ["approved"],
            "sum": ["65.50"],
            "was_sum": ["70.00"],
            "tid": ["t1"],
        }
    ]


def test_an_edit_of_neither_status_nor_amount_sends_nothing(admin_client, deposit, receiver):
    before = Delivery.objects.count()
    edit(admin_client, deposit, tid="t1-fixed")
    assert Delivery.objects.count() == before and receiver.requests == []


def test_the_chat_hears_of_an_admin_chargeback(admin_client, spot, deposit):
    dep = spot.goals.get(token="dep")
    dep.message_template = "Deposit {sum}: {status}"
    dep.save()
    edit(admin_client, deposit, status="rejected")
    assert Message.objects.filter(conversion=deposit).latest("id").text == "Deposit 70.00: rejected"


def test_a_conversion_added_in_the_admin_is_sent(admin_client, spot, lead, partner, receiver):
    url = "/admin/crm/conversion/add/"
    data = {
        "client": lead.pk,
        "goal": spot.goals.get(token="dep").pk,
        "amount": "30",
        "currency": "USD",
        "tid": "manual-1",
        "status": "approved",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    drain()
    assert queries(receiver, 1) == [
        {"s": ["approved"], "was": [""], "sum": ["30.00"], "was_sum": [""], "tid": ["manual-1"]}
    ]


def test_an_admin_action_marks_chargebacks_and_each_reaches_the_partner(
    admin_client, spot, lead, deposit, receiver
):
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "15"}
    assert admin_client.get(url, params | {"tracker.tid": "t2"}).status_code == 200
    drain()
    receiver.wait_for(1)
    receiver.requests.clear()
    chosen = list(Conversion.objects.filter(tid__in=["t1", "t2"]).values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/crm/conversion/",
        {"action": "mark_rejected", "_selected_action": chosen},
        follow=True,
    )
    assert "Marked 2 conversion(s) rejected" in response.content.decode()
    drain()
    got = sorted(queries(receiver, 2), key=lambda q: q["tid"])
    assert [(q["tid"], q["s"], q["was"]) for q in got] == [
        (["t1"], ["rejected"], ["approved"]),
        (["t2"], ["rejected"], ["approved"]),
    ]
    assert set(Conversion.objects.values_list("status", flat=True)) == {"rejected"}

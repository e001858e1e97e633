"""A switched-off postback keeps its events: its deliveries wait as held and
go out, with their delivery ids, when it is switched on again."""

import pytest
from django.urls import reverse

from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")


@pytest.fixture
def postback(spot, receiver):
    return OutgoingPostback.objects.create(spot=spot, name="Partner", url=receiver.url + "/pb")


def switch_off(postback, reason=""):
    OutgoingPostback.objects.filter(pk=postback.pk).update(enabled=False, disabled_reason=reason)
    postback.refresh_from_db()


def test_a_pending_delivery_of_a_switched_off_postback_is_held_not_sent(postback, lead, receiver):
    accept(lead, "reg")
    switch_off(postback, "by hand")
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.HELD and delivery.attempts == 0
    assert "off" in delivery.last_error and receiver.requests == []


def test_a_conversion_writes_held_deliveries_for_a_switched_off_postback(postback, lead, receiver):
    switch_off(postback)
    _, _, [delivery] = accept(lead, "reg")
    drain()
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.HELD
    assert receiver.requests == []


def test_switching_the_postback_on_sends_what_it_held_with_the_same_ids(
    postback, lead, receiver, django_capture_on_commit_callbacks
):
    accept(lead, "reg")
    switch_off(postback, "2 failed attempts in a row")
    drain()
    accept(lead, "dep", amount=5)  # written held
    held = set(Delivery.objects.filter(status=Delivery.HELD).values_list("pk", flat=True))
    assert len(held) == 2

    postback.enabled = True
    with django_capture_on_commit_callbacks(execute=True):
        postback.save()
    drain()
    got = receiver.wait_for(2)
    assert {r.headers["X-Delivery-Id"] for r in got} == {str(pk) for pk in held}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.SUCCESS}
    postback.refresh_from_db()
    assert postback.disabled_reason == "" and postback.consecutive_failures == 0


def test_a_postback_disabled_by_failures_holds_its_retry_and_sends_it_when_on_again(
    postback, lead, receiver, settings
):
    settings.POSTBACKS_DISABLE_AFTER = 1
    receiver.reply(500, "down")
    accept(lead, "reg")
    drain()
    delivery = Delivery.objects.get()
    postback.refresh_from_db()
    assert not postback.enabled and delivery.status == Delivery.HELD
    assert delivery.attempts == 1 and len(receiver.requests) == 1

    postback.enabled = True
    postback.save()
    drain()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.SUCCESS and delivery.attempts == 2
    assert len(receiver.requests) == 2


def test_the_spot_page_counts_the_held_and_switching_on_in_the_admin_sends_them(
    admin_client, postback, spot, lead, receiver
):
    switch_off(postback, "50 failed attempts in a row")
    accept(lead, "reg")
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk])).content
    assert "1 deliveries held, sent when switched on" in page.decode()
    url = reverse("admin:postbacks_outgoingpostback_change", args=[postback.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "goals"}
    data.update(enabled="on", reengagement_window="", min_delay="", max_rps="")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    drain()
    assert Delivery.objects.get().status == Delivery.SUCCESS
    assert len(receiver.requests) == 1


def test_the_delivery_log_says_how_many_are_held_and_can_drop_them(
    admin_client, postback, lead, receiver
):
    switch_off(postback)
    accept(lead, "reg")
    accept(lead, "dep", amount=1)
    changelist = reverse("admin:postbacks_delivery_changelist")
    assert "2 deliveries held" in admin_client.get(changelist).content.decode()
    first = Delivery.objects.first()
    admin_client.post(changelist, {"action": "drop_held", "_selected_action": [first.pk]})
    first.refresh_from_db()
    assert first.status == Delivery.SKIPPED and "dropped by" in first.last_error
    postback.enabled = True
    postback.save()
    drain()
    assert len(receiver.requests) == 1

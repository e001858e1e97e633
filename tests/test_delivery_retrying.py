"""A delivery that failed and will be tried again shows as *retrying*, with its
code and next try; failing postbacks are counted where people look."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from postbacks.delivery import attempts as delivery_mod
from postbacks.delivery import batch, failing
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")

CHANGELIST = "admin:postbacks_delivery_changelist"


@pytest.fixture
def slow_retries(settings):
    # Real retry delays (a minute first): the retry stays waiting during the test.
    settings.POSTBACKS_DELAY_SCALE = 1


@pytest.fixture
def postback(spot, receiver):
    return OutgoingPostback.objects.create(spot=spot, name="Keitaro", url=receiver.url + "/pb")


def listed(admin_client, **params):
    page = admin_client.get(reverse(CHANGELIST), params)
    assert page.status_code == 200
    return page


def test_a_500_is_listed_as_retrying_with_its_code_and_next_try(
    admin_client, postback, lead, receiver, slow_retries
):
    receiver.reply(500, "down")
    accept(lead, "reg")
    batch.send_due()
    d = Delivery.objects.get()
    assert (d.status, d.attempts, d.last_http_status) == (Delivery.PENDING, 1, 500)
    text = listed(admin_client).content.decode()
    assert 'class="delivery-state state-retrying"' in text and ">Retrying</span>" in text
    assert "HTTP 500" in text
    at = timezone.localtime(d.next_attempt)
    assert f"{at:%H:%M} (in " in text
    assert listed(admin_client, status="retrying").context["cl"].result_count == 1
    assert listed(admin_client, status="pending").context["cl"].result_count == 0


def test_a_delivery_not_tried_yet_is_pending_not_retrying(admin_client, postback, lead):
    accept(lead, "reg")
    assert listed(admin_client, status="pending").context["cl"].result_count == 1
    assert listed(admin_client, status="retrying").context["cl"].result_count == 0
    assert "state-pending" in listed(admin_client).content.decode()


def test_the_filter_offers_retrying_and_failed(admin_client, postback, lead):
    accept(lead, "reg")
    choices = {
        c["display"]
        for spec in listed(admin_client).context["cl"].filter_specs
        if spec.title == "status"
        for c in spec.choices(listed(admin_client).context["cl"])
    }
    assert {"Retrying", "Failed", "Pending", "Delivered"} <= choices


def test_failed_rows_are_red_and_show_why(admin_client, postback, lead, receiver, settings):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    receiver.reply(503, "maintenance")
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    assert (d.status, d.last_http_status) == (Delivery.FAILED, 503)
    page = listed(admin_client, status="failed")
    assert page.context["cl"].result_count == 1
    text = page.content.decode()
    assert 'class="delivery-state state-failed" style="color:#ba2121' in text
    assert "HTTP 503" in text
    # The list's style tints failed and retrying rows.
    assert "tr:has(.state-failed)" in text and "tr:has(.state-retrying)" in text


def test_the_single_delivery_path_keeps_the_http_status(postback, lead, receiver, slow_retries):
    receiver.reply(502, "bad gateway")
    _, _, [d] = accept(lead, "reg")
    assert delivery_mod.deliver(d.pk) == Delivery.PENDING
    d.refresh_from_db()
    assert (d.attempts, d.last_http_status, d.last_error) == (1, 502, "HTTP 502")
    Delivery.objects.filter(pk=d.pk).update(next_attempt=timezone.now())
    receiver.reply(201, "created")
    assert delivery_mod.deliver(d.pk) == Delivery.SUCCESS
    d.refresh_from_db()
    assert (d.attempts, d.last_http_status, d.last_error) == (2, 201, "")


def test_the_batch_path_keeps_the_status_of_a_success(postback, lead, receiver):
    receiver.reply(202, "accepted")
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    assert (d.status, d.last_http_status) == (Delivery.SUCCESS, 202)


def test_attempts_count_every_attempt_after_a_resend(
    admin_client, postback, lead, receiver, settings
):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    receiver.reply(500)
    accept(lead, "reg")
    drain()
    d = Delivery.objects.get()
    admin_client.post(
        reverse(CHANGELIST), {"action": "resend_selected", "_selected_action": [d.pk]}
    )
    drain()
    d.refresh_from_db()
    assert d.status == Delivery.SUCCESS and d.attempt_log.count() == 2
    page = listed(admin_client)
    row = page.context["cl"].result_list[0]
    assert row.attempts_made == 2
    assert '<td class="field-attempts_made">2</td>' in page.content.decode()
    card = admin_client.get(reverse("admin:crm_client_change", args=[lead.pk])).content.decode()
    assert "<td>2</td>" in card


def test_the_client_card_colours_retrying(admin_client, postback, lead, receiver, slow_retries):
    receiver.reply(500)
    accept(lead, "reg")
    batch.send_due()
    card = admin_client.get(reverse("admin:crm_client_change", args=[lead.pk])).content.decode()
    assert 'class="delivery-status state-retrying" style="color:#a36d00">Retrying<' in card


def test_the_spot_page_counts_failing_deliveries_per_postback(
    admin_client, spot, postback, lead, receiver, slow_retries
):
    receiver.reply(500)
    receiver.reply(500)
    accept(lead, "reg")
    accept(lead, "dep", amount=10)
    batch.send_due()
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk])).content.decode()
    assert "2 failing now (2 retrying)" in page
    assert f"?postback__id__exact={postback.pk}" in page


def test_failing_by_postback_and_backlog(spot, postback, lead, receiver, settings):
    settings.POSTBACKS_DELAY_SCALE = 1
    settings.POSTBACKS_MAX_ATTEMPTS = 2
    receiver.reply(500)
    accept(lead, "reg")
    batch.send_due()  # retrying
    accept(lead, "dep", amount=5)  # due, not tried
    old = Delivery.objects.get(status=Delivery.PENDING, attempts=0)
    Delivery.objects.filter(pk=old.pk).update(
        next_attempt=timezone.now() - datetime.timedelta(minutes=5)
    )
    found = failing.failing_by_postback()
    assert list(found) == [postback.pk]
    f = found[postback.pk]
    assert (f.retrying, f.failed, f.total, f.last_http_status) == (1, 0, 1, 500)
    assert f.name == "Keitaro" and f.spot_id == spot.pk and f.kind == "postback"
    assert failing.failing_by_postback(spot_ids=[spot.pk + 1]) == {}
    b = failing.backlog()
    assert (b.due, b.scheduled) == (1, 1)
    assert datetime.timedelta(minutes=4) < b.oldest_age < datetime.timedelta(minutes=6)
    # A failure long ago is not failing now.
    Delivery.objects.filter(pk=old.pk).update(
        status=Delivery.FAILED, updated=timezone.now() - datetime.timedelta(days=2)
    )
    assert failing.failing_by_postback()[postback.pk].failed == 0
    assert failing.backlog().due == 0

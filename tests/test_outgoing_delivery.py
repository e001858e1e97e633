"""Delivery: retries, give-up, rules of 000/004, delays, rate limits, lost workers."""

import datetime
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm.models import Client
from postbacks.delivery import attempts as delivery_mod
from postbacks.delivery import batch
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tests.receiver import drain

pytestmark = pytest.mark.usefixtures("outgoing")


def make_postback(spot, receiver, path="/pb", **kwargs):
    kwargs.setdefault("name", "Partner")
    return OutgoingPostback.objects.create(spot=spot, url=receiver.url + path, **kwargs)


def test_a_500_is_retried_until_it_succeeds_with_the_same_delivery_id(spot, lead, receiver):
    make_postback(spot, receiver)
    receiver.reply(500, "down")
    receiver.reply(503, "still down")
    accept(lead, "reg")
    drain()
    got = receiver.wait_for(3)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.SUCCESS and delivery.attempts == 3
    assert {r.headers["X-Delivery-Id"] for r in got} == {str(delivery.pk)}
    log = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.response_status, a.success) for a in log] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert log[0].response_body == "down" and "X-Delivery-Id" in log[0].request_headers


def test_a_timeout_is_retried_then_succeeds(spot, lead, receiver):
    # Generous against a busy machine: the answer comes 0.3 s after the timeout.
    make_postback(spot, receiver, timeout=0.5)
    receiver.reply(200, "late", delay=0.8)
    accept(lead, "reg")
    drain()
    delivery = Delivery.objects.get()
    first, second = delivery.attempt_log.order_by("number")
    assert first.error_class == "ReadTimeout" and first.response_status is None
    assert second.success and delivery.status == Delivery.SUCCESS


def test_a_delivery_gives_up_after_the_maximum_attempts(spot, lead, receiver, settings):
    settings.POSTBACKS_MAX_ATTEMPTS = 3
    make_postback(spot, receiver)
    for _ in range(5):
        receiver.reply(500, "no")
    accept(lead, "reg")
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.FAILED and delivery.attempts == 3
    assert len(receiver.requests) == 3 and delivery.last_error == "HTTP 500"


def test_a_redirect_is_a_failure_and_is_not_followed(spot, lead, receiver, settings):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    make_postback(spot, receiver)
    receiver.reply(302, "", headers={"Location": receiver.url + "/elsewhere"})
    accept(lead, "reg")
    drain()
    assert [r.path for r in receiver.requests] == ["/pb"]
    assert Delivery.objects.get().status == Delivery.FAILED


def test_retry_after_is_honoured(spot, lead, receiver, settings):
    settings.POSTBACKS_DELAY_SCALE = 0.1
    make_postback(spot, receiver)
    receiver.reply(429, "slow down", headers={"Retry-After": "3"})
    accept(lead, "reg")
    batch.send_due()
    delivery = Delivery.objects.get()
    wait = (delivery.next_attempt - timezone.now()).total_seconds()
    # 3 s scaled by 0.1: about 0.3 s, not the first step of the schedule (6 s +-20%).
    assert 0.2 < wait <= 0.3


def test_the_configured_success_and_error_responses_decide(spot, lead, receiver, settings):
    settings.POSTBACKS_MAX_ATTEMPTS = 2
    make_postback(spot, receiver, success_text="OK", error_text="ERROR")
    receiver.reply(200, "ERROR: bad click")
    accept(lead, "reg")
    drain()
    first, second = Delivery.objects.get().attempt_log.order_by("number")
    assert not first.success and "error text" in first.error
    assert second.success


def test_a_postback_that_keeps_failing_is_disabled(spot, lead, receiver, settings):
    settings.POSTBACKS_DISABLE_AFTER = 2
    settings.POSTBACKS_MAX_ATTEMPTS = 2
    pb = make_postback(spot, receiver)
    receiver.reply(500)
    receiver.reply(500)
    accept(lead, "reg")
    drain()
    pb.refresh_from_db()
    assert not pb.enabled and "2 failed attempts in a row" in pb.disabled_reason


def test_only_the_first_event_is_sent_when_asked(spot, lead, receiver):
    make_postback(spot, receiver, first_event_only=True)
    accept(lead, "redep", amount=5)
    accept(lead, "redep", amount=6)
    drain()
    assert len(receiver.requests) == 1
    skipped = Delivery.objects.get(status=Delivery.SKIPPED)
    assert "first event" in skipped.last_error


def test_an_event_after_the_reengagement_window_is_skipped(spot, receiver):
    make_postback(spot, receiver, reengagement_window=datetime.timedelta(days=7))
    old = Client.objects.create(spot=spot, advert_pixel="px")
    Client.objects.filter(pk=old.pk).update(created=timezone.now() - datetime.timedelta(days=8))
    old.refresh_from_db()
    fresh = Client.objects.create(spot=spot, advert_pixel="px")
    accept(old, "reg")
    accept(fresh, "reg")
    drain()
    assert len(receiver.requests) == 1
    assert Delivery.objects.get(conversion__client=old).status == Delivery.SKIPPED


def test_without_all_users_only_attributed_clients_trigger(spot, lead, receiver):
    make_postback(spot, receiver, path="/pb?c={advert__campaign_id}")
    organic = Client.objects.create(spot=spot)
    accept(organic, "reg")
    accept(lead, "reg")
    drain()
    assert [r.path for r in receiver.requests] == ["/pb?c=c1"]


def test_with_all_users_every_client_triggers_without_attribution(spot, lead, receiver):
    make_postback(spot, receiver, path="/pb?c={advert__campaign_id}", all_users=True)
    organic = Client.objects.create(spot=spot)
    accept(organic, "reg")
    accept(lead, "reg")
    drain()
    assert [r.path for r in receiver.requests] == ["/pb?c=", "/pb?c="]


def test_the_minimum_delay_is_waited(spot, lead, receiver):
    make_postback(spot, receiver, min_delay=datetime.timedelta(seconds=0.4))
    started = time.monotonic()
    accept(lead, "reg")
    assert batch.send_due() == 0
    drain()
    [got] = receiver.wait_for(1)
    assert got.at - started >= 0.4


def test_max_requests_per_second_is_measured_at_the_receiver(spot, receiver):
    make_postback(spot, receiver, max_rps=5)
    for _ in range(6):
        accept(Client.objects.create(spot=spot, advert_pixel="px"), "reg")
    drain()
    times = sorted(r.at for r in receiver.wait_for(6))
    assert len(times) == 6
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 5 per second: a request starts 0.2 s after the previous one at the earliest.
    assert min(gaps) > 0.1
    assert times[-1] - times[0] >= 0.8
    assert not DeliveryAttempt.objects.filter(success=False).exists()


def test_a_worker_killed_after_its_claim_leaves_the_delivery_to_another(
    spot, lead, receiver, settings
):
    settings.POSTBACKS_CLAIM_SECONDS = 0.3
    make_postback(spot, receiver)
    _, _, [d] = accept(lead, "reg")
    assert delivery_mod.claim(d.pk)  # the worker dies here, before sending
    assert not delivery_mod.claim(d.pk)
    assert batch.send_due() == 0
    time.sleep(0.35)
    # The next sender's claim is a real one: long enough for its attempt.
    settings.POSTBACKS_CLAIM_SECONDS = 120
    drain()
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get().status == Delivery.SUCCESS


def test_two_workers_never_send_one_delivery_twice(spot, lead, receiver):
    make_postback(spot, receiver)
    _, _, [d] = accept(lead, "reg")
    assert delivery_mod.deliver(d.pk) == Delivery.SUCCESS
    assert delivery_mod.deliver(d.pk) is None
    assert len(receiver.requests) == 1


def test_private_targets_are_refused_at_connect_time(spot, lead, receiver, settings):
    settings.POSTBACKS_ALLOWED_NETWORKS = []
    make_postback(spot, receiver)
    accept(lead, "reg")
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.FAILED and receiver.requests == []
    attempt = delivery.attempt_log.get()
    assert attempt.error_class == "BlockedAddress" and "127.0.0.1" in attempt.error


@pytest.mark.parametrize(
    "addr",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "224.0.0.1", "0.0.0.0", "::1"]
    + ["fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "100.64.0.1", "240.0.0.1"],
)
def test_internal_addresses_are_not_allowed(addr, settings):
    from postbacks.delivery.sender import address_allowed

    settings.POSTBACKS_ALLOWED_NETWORKS = []
    assert not address_allowed(addr)


def test_public_addresses_and_allowed_networks_are_allowed(settings):
    from postbacks.delivery.sender import address_allowed

    settings.POSTBACKS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert address_allowed("93.184.216.34") and address_allowed("2606:2800:220:1::1")
    assert address_allowed("10.2.3.4") and not address_allowed("192.168.1.1")
    settings.POSTBACKS_ALLOW_PRIVATE_NETWORKS = True
    assert address_allowed("192.168.1.1")


def test_resend_failed_sends_again_with_the_same_id(spot, lead, receiver, settings):
    settings.POSTBACKS_MAX_ATTEMPTS = 1
    make_postback(spot, receiver)
    receiver.reply(500)
    accept(lead, "reg")
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.FAILED
    today = timezone.localdate().isoformat()
    call_command("resend_failed", since=today, until=today)
    drain()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.SUCCESS
    ids = {r.headers["X-Delivery-Id"] for r in receiver.wait_for(2)}
    assert ids == {str(delivery.pk)}
    assert list(delivery.attempt_log.values_list("number", flat=True)) == [1, 2]


def test_requests_to_one_receiver_reuse_the_connection(spot, receiver):
    make_postback(spot, receiver)
    for _ in range(3):  # one after the other, each by a new batch and its threads
        accept(Client.objects.create(spot=spot, advert_pixel="px"), "reg")
        drain()
    ports = {r.client_port for r in receiver.wait_for(3)}
    assert len(ports) == 1


def test_a_receivers_cookies_are_never_sent_back(spot, receiver):
    receiver.reply(200, "ok", headers={"Set-Cookie": "session=secret; Path=/"})
    make_postback(spot, receiver)
    for _ in range(2):
        accept(Client.objects.create(spot=spot, advert_pixel="px"), "reg")
        drain()
    assert [r.headers.get("Cookie") for r in receiver.wait_for(2)] == [None, None]


def test_a_long_response_is_stored_capped(spot, lead, receiver, settings):
    settings.POSTBACKS_RESPONSE_CAP = 100
    make_postback(spot, receiver)
    receiver.reply(200, "x" * 5000)
    accept(lead, "reg")
    drain()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.success and attempt.response_body == "x" * 100


def test_a_host_name_that_resolves_to_loopback_is_refused(spot, lead, receiver, settings):
    settings.POSTBACKS_ALLOWED_NETWORKS = []
    OutgoingPostback.objects.create(spot=spot, name="p", url=f"http://localhost:{receiver.port}/pb")
    accept(lead, "reg")
    drain()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_class == "BlockedAddress" and receiver.requests == []


def test_the_retry_schedule_has_bounded_jitter(settings):
    settings.POSTBACKS_DELAY_SCALE = 1
    delays = {delivery_mod.retry_delay(1).total_seconds() for _ in range(50)}
    assert all(48 <= d <= 72 for d in delays) and len(delays) > 1
    assert 0.8 * 3600 <= delivery_mod.retry_delay(5).total_seconds() <= 1.2 * 3600
    settings.POSTBACKS_RETRY_AFTER_MAX = 600
    assert delivery_mod.retry_delay(1, retry_after=86400).total_seconds() == 600


def test_retry_after_may_be_an_http_date():
    later = timezone.now() + datetime.timedelta(seconds=120)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 110 <= delivery_mod.parse_retry_after(header) <= 120
    assert delivery_mod.parse_retry_after("soon") is None


def test_a_postback_goes_out_for_its_goals_or_for_every_goal_but_the_lead(spot, lead):
    goals = {g.token: g for g in spot.goals.all()}
    OutgoingPostback.objects.create(spot=spot, name="every", url="https://e.example/")
    deps = OutgoingPostback.objects.create(spot=spot, name="deps", url="https://d.example/")
    deps.goals.set([goals["dep"], goals["redep"]])
    leads = OutgoingPostback.objects.create(spot=spot, name="leads", url="https://l.example/")
    leads.goals.set([goals["lead"]])
    other = Client.objects.create(spot=spot, advert_campaign_id="c2")  # a new lead: sent to leads
    sent = {}
    for event in ("reg", "sale", "sale"):
        _, _, deliveries = accept(lead, event)
        sent[event] = sorted(d.postback.name for d in deliveries)
    assert sent == {"reg": ["every"], "sale": ["deps", "every"]}
    lead_deliveries = Delivery.objects.filter(conversion__client=other)
    assert [d.postback.name for d in lead_deliveries] == ["leads"]

"""Signed outgoing postbacks (Standard Webhooks v1): real deliveries to a local
receiver, verified with the `standardwebhooks` package as a receiver would."""

import re
import time
from pathlib import Path

import pytest
from django.urls import reverse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from postbacks.delivery import attempts, sender, signing
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, DeliveryAttempt, OutgoingPostback
from tests.receiver import drain
from tracker.models import Partner, Pixel
from tracker.presets import apply_preset
from tracker.signing import new_secret

pytestmark = pytest.mark.usefixtures("outgoing")

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture
def postback(spot, receiver):
    return OutgoingPostback.objects.create(
        spot=spot,
        name="Own tracker",
        url=receiver.url + "/hook",
        method="POST",
        body_format="json",
        body='{"click": "{click_id}", "sum": "{sum}", "note": "é"}',
        signed=True,
        signing_secret=new_secret(),
    )


def verified(secret, got, payload=None):
    """What `standardwebhooks` says of a received request (raises when it fails)."""
    return Webhook(secret).verify(
        got.body if payload is None else payload, got.headers, json_parse=payload is None
    )


def form_data(page, **changes):
    """What the admin page posts back as shown (its inlines too), with `changes`."""
    forms = [page.context["adminform"].form]
    for inline in page.context.get("inline_admin_formsets", []):
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return {**data, **changes}


def shown(response):
    """The page after a save (the redirect followed): its messages included."""
    assert response.redirect_chain, "the save did not redirect"
    return response.content.decode()


def test_a_signed_delivery_verifies_with_standardwebhooks_and_a_tampered_body_fails(
    postback, lead, receiver
):
    accept(lead, "dep", amount=12)
    drain()
    [got] = receiver.wait_for(1)
    delivery = Delivery.objects.get()
    assert got.headers["webhook-id"] == str(delivery.pk)
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 10
    assert verified(postback.signing_secret, got) == {
        "click": lead.click_id,
        "sum": "12.00",
        "note": "é",
    }
    with pytest.raises(WebhookVerificationError):
        verified(postback.signing_secret, got, got.body.replace(b"12.00", b"99.00"))
    with pytest.raises(WebhookVerificationError):
        verified(new_secret(), got)  # another postback's secret


def test_a_retry_keeps_the_id_and_signs_its_own_timestamp(postback, lead, receiver):
    receiver.reply(500, "down")
    accept(lead, "reg")
    drain()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    for got in (first, second):
        verified(postback.signing_secret, got)
    # A resend is the same delivery: the same id again.
    attempts.resend(Delivery.objects.all())
    drain()
    assert receiver.wait_for(3)[2].headers["webhook-id"] == first.headers["webhook-id"]


def test_a_get_signs_its_path_and_query(spot, lead, receiver):
    pb = OutgoingPostback.objects.create(
        spot=spot,
        name="Keitaro",
        url=receiver.url + "/postback?subid={cl_id}&status={status}&note=a b",
        signed=True,
        signing_secret=new_secret(),
    )
    accept(lead, "dep", amount=5)
    drain()
    [got] = receiver.wait_for(1)
    assert got.method == "GET" and got.body == b""
    assert got.path == "/postback?subid=trk-1&status=approved&note=a%20b"
    # What is signed: "{id}.{timestamp}." + the request target, as on the request line.
    verified(pb.signing_secret, got, got.path.encode())
    with pytest.raises(WebhookVerificationError):
        verified(pb.signing_secret, got, got.path.replace("approved", "pending").encode())


def test_a_rotation_signs_with_both_keys_for_the_grace_period_then_the_new_one(
    postback, lead, receiver, settings
):
    settings.POSTBACKS_SIGNING_GRACE_HOURS = 2 / 3600  # two seconds
    old = postback.signing_secret
    new = signing.rotate(postback)
    assert new != old and new.startswith("whsec_")
    accept(lead, "reg")
    drain()
    [during] = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verified(old, during)
    verified(new, during)

    time.sleep(2.1)
    accept(lead, "dep", amount=3)
    drain()
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verified(new, after)
    with pytest.raises(WebhookVerificationError):
        verified(old, after)


def send_at(postback, receiver, at):
    req = attempts.preview(postback)
    signing.apply(req, postback, "msg_replayed", at=at)
    result = sender.send(req, 3)
    assert result.status == 200
    return receiver.requests[-1]


def test_a_timestamp_older_than_five_minutes_fails_verification(postback, receiver):
    fresh = send_at(postback, receiver, time.time() - 290)
    verified(postback.signing_secret, fresh)
    old = send_at(postback, receiver, time.time() - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verified(postback.signing_secret, old)


def test_the_secret_never_reaches_the_delivery_log(admin_client, postback, lead, receiver):
    signing.rotate(postback)  # two keys: neither may show
    accept(lead, "reg")
    drain()
    [got] = receiver.wait_for(1)
    stored = DeliveryAttempt.objects.get()
    assert f"webhook-signature: {got.headers['webhook-signature']}" in stored.request_headers
    page = admin_client.get(
        reverse("admin:postbacks_delivery_change", args=[stored.delivery_id])
    ).content.decode()
    for secret in (postback.signing_secret, postback.old_signing_secret):
        key = secret.removeprefix("whsec_")
        assert key not in stored.request_headers + stored.request_body + stored.url
        assert key not in page


def test_the_admin_test_send_is_signed(admin_client, postback, receiver):
    url = reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
    admin_client.post(url, {"conversion": ""})
    [got] = receiver.wait_for(1)
    assert got.headers["webhook-id"].startswith("test_")
    verified(postback.signing_secret, got)


def test_pixel_requests_are_never_signed(spot, lead, receiver, settings, postback):
    settings.POSTBACKS_PIXEL_URLS = {"facebook": receiver.url}
    goal = spot.goals.get(token="dep")
    goal.facebook_event = "Purchase"
    goal.save()
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="tok-123")
    accept(lead, "dep", amount=5)
    drain()
    got = receiver.wait_for(2)
    signed = [r for r in got if "webhook-signature" in r.headers]
    assert [r.path for r in signed] == ["/hook"]
    assert len(got) == 2


def test_switching_signing_on_shows_the_secret_once(admin_client, spot, receiver, lead):
    pb = OutgoingPostback.objects.create(spot=spot, name="Own", url=receiver.url + "/pb")
    url = reverse("admin:postbacks_outgoingpostback_change", args=[pb.pk])
    page = admin_client.get(url)
    response = admin_client.post(url, form_data(page, signed="on"), follow=True)
    pb.refresh_from_db()
    [secret] = SECRET_RE.findall(shown(response))
    assert pb.signed and secret == pb.signing_secret
    again = admin_client.get(url).content.decode()
    assert secret.removeprefix("whsec_") not in again and "Rotate signing secret" in again
    # Saving again keeps the secret and shows nothing.
    response = admin_client.post(url, form_data(admin_client.get(url)), follow=True)
    assert not SECRET_RE.findall(shown(response))
    pb.refresh_from_db()
    assert pb.signing_secret == secret

    accept(lead, "reg")
    drain()
    verified(secret, receiver.wait_for(1)[0], b"/pb")


def test_the_rotate_button_shows_the_new_secret_and_keeps_the_old_one_signing(
    admin_client, postback, lead, receiver
):
    old = postback.signing_secret
    url = reverse("admin:postbacks_outgoingpostback_rotate_secret", args=[postback.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    [new] = SECRET_RE.findall(shown(response))
    postback.refresh_from_db()
    assert postback.signing_secret == new and postback.old_signing_secret == old
    assert 23.9 * 3600 < (postback.old_secret_until - attempts.now()).total_seconds() <= 24 * 3600
    page = admin_client.get(reverse("admin:postbacks_outgoingpostback_change", args=[postback.pk]))
    text = page.content.decode()
    assert "previous secret also signs until" in text
    assert new.removeprefix("whsec_") not in text and old.removeprefix("whsec_") not in text
    accept(lead, "reg")
    drain()
    got = receiver.wait_for(1)[0]
    verified(old, got)
    verified(new, got)


def test_the_keitaro_preset_signs_and_shows_its_secret_once(admin_client, spot, presets):
    assert presets["keitaro"].data["outgoing"]["signed"] is True
    response = admin_client.post(
        reverse("admin:tracker_partner_from_preset"),
        {
            "preset": presets["keitaro"].pk,
            "spot": spot.pk,
            "outgoing_base": "https://trk.example.com/7d3a1b2",
        },
        follow=True,
    )
    pb = OutgoingPostback.objects.get(partner__preset="keitaro")
    assert pb.signed and pb.signing_secret.startswith("whsec_")
    assert SECRET_RE.findall(shown(response)) == [pb.signing_secret]
    partner = Partner.objects.get(preset="keitaro")
    page = admin_client.get(reverse("admin:tracker_partner_change", args=[partner.pk]))
    assert pb.signing_secret.removeprefix("whsec_") not in page.content.decode()


def test_a_preset_without_signed_stays_unsigned(spot, presets):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base="https://trk.example.com/x")
    assert OutgoingPostback.objects.get(partner=partner).signed
    data = {**presets["keitaro"].data}
    data["outgoing"] = {k: v for k, v in data["outgoing"].items() if k != "signed"}
    presets["keitaro"].data = data
    other = apply_preset(presets["keitaro"], spot, outgoing_base="https://trk.example.com/y")
    pb = OutgoingPostback.objects.get(partner=other)
    assert not pb.signed and pb.signing_secret == ""


def readme_verify():
    """The README's ten lines of plain Python, as a receiver would paste them."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    space = {}
    exec(code, space)  # noqa: S102 - the README's own example
    return space["verify"]


def test_the_readmes_plain_python_verifies_a_delivery(postback, lead, receiver, spot):
    verify = readme_verify()
    accept(lead, "reg")
    drain()
    [got] = receiver.wait_for(1)
    headers = {k.lower(): v for k, v in got.headers.items()}
    verify(postback.signing_secret, headers, got.body)
    with pytest.raises(ValueError, match="no webhook-signature"):
        verify(postback.signing_secret, headers, got.body + b" ")
    old = send_at(postback, receiver, time.time() - 301)
    with pytest.raises(ValueError, match="5-minute window"):
        verify(postback.signing_secret, {k.lower(): v for k, v in old.headers.items()}, old.body)

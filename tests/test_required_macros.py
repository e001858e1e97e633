"""A required macro that renders empty does not send: the delivery is skipped
with the reason on it and the preview warns (issue 22, point 2); {status} goes
out in the receiver's words of any outgoing postback (point 1)."""

import pytest
from django.urls import reverse

from crm.models import Client
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, OutgoingPostback
from tests.receiver import drain
from tracker.presets import apply_preset

pytestmark = pytest.mark.usefixtures("outgoing")

NO_CL_ID = "{cl_id} is empty (the client has no click id of your tracker)."


def test_a_client_without_the_trackers_click_id_is_skipped_with_the_reason(
    client, spot, presets, receiver
):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base=receiver.url + "/k")
    lead = Client.objects.create(spot=spot)  # came without the team's tracker click id
    url = partner.postbacks.get(name="First Deposit").incoming_url()
    url = url.replace("{subid}", lead.click_id).replace("{status}", "sale")
    url = url.replace("{payout}", "10").replace("{currency}", "USD").replace("{tid}", "t1")
    assert client.get(url).status_code == 200
    drain()
    delivery = Delivery.objects.get(postback__partner=partner)
    assert delivery.status == Delivery.SKIPPED
    assert delivery.last_error == NO_CL_ID
    assert delivery.attempts == 0 and not delivery.attempt_log.exists()
    assert receiver.requests == []


def test_only_the_client_without_the_click_id_is_skipped(spot, receiver):
    OutgoingPostback.objects.create(
        spot=spot,
        name="tracker",
        url=receiver.url + "/pb?subid={cl_id}",
        required_macros="cl_id",
        all_users=True,
    )
    accept(Client.objects.create(spot=spot), "dep", amount=5)
    accept(Client.objects.create(spot=spot, cl_id="trk-9"), "dep", amount=5)
    drain()
    [got] = receiver.wait_for(1)
    assert got.path == "/pb?subid=trk-9"
    statuses = Delivery.objects.order_by("conversion__client__cl_id").values_list(
        "status", "last_error"
    )
    assert list(statuses) == [(Delivery.SKIPPED, NO_CL_ID), (Delivery.SUCCESS, "")]


def test_every_empty_required_macro_is_named(spot, receiver):
    OutgoingPostback.objects.create(
        spot=spot,
        name="tracker",
        url=receiver.url + "/pb?subid={cl_id}&p={player_id}&x={fields__deposit_id}",
        required_macros="{cl_id}, player_id, fields__deposit_id",
        all_users=True,
    )
    accept(Client.objects.create(spot=spot, player_id="p1"), "dep", amount=5)
    drain()
    assert Delivery.objects.get().last_error == (
        "{cl_id} is empty (the client has no click id of your tracker); "
        "{fields__deposit_id} is empty (the client has no value for it)."
    )
    assert receiver.requests == []


def test_the_preview_warns_when_a_required_macro_is_empty(admin_client, spot, receiver):
    postback = OutgoingPostback.objects.create(
        spot=spot,
        name="tracker",
        url=receiver.url + "/pb?subid={cl_id}",
        required_macros="cl_id",
        all_users=True,
    )
    conversion, _, _ = accept(Client.objects.create(spot=spot), "dep", amount=5)
    page = reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
    html = admin_client.get(page, {"conversion": conversion.pk}).content.decode()
    assert 'id="required-empty"' in html
    assert "{cl_id} is empty (the client has no click id of your tracker)" in html
    # The sample conversion has every macro: no warning.
    assert 'id="required-empty"' not in admin_client.get(page).content.decode()


def test_status_words_of_an_own_postback_name_the_status(spot, lead, receiver):
    OutgoingPostback.objects.create(
        spot=spot,
        name="own",
        url=receiver.url + "/pb?st={status}&was={previous_status}",
        status_words="approved = confirmed\nrejected = declined",
    )
    accept(lead, "dep", amount=5, tid="t1")
    accept(lead, "dep", amount=5, tid="t1", status="rejected")
    drain()
    paths = sorted(r.path for r in receiver.wait_for(2))
    assert paths == ["/pb?st=confirmed&was=", "/pb?st=declined&was=confirmed"]


ADD = reverse("admin:postbacks_outgoingpostback_add")


def post(admin_client, spot, **fields):
    data = {
        "spot": spot.pk,
        "name": "p",
        "url": "https://a.example/pb?c={click_id}&s={status}",
        "method": "GET",
        "body_format": "none",
        "timeout": "10",
        **fields,
    }
    return admin_client.post(ADD, data)


def errors_of(response, field):
    assert response.status_code == 200, "the form was accepted"
    return " ".join(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.parametrize(
    "words, error",
    [
        ("approved sale", "Line 1: write 'status = their word'"),
        ("approved = sale\nchargeback = rejected", "Line 2: write 'status = their word'"),
        ("approved = sale\napproved = ok", "Line 2: approved is given a word twice."),
        ("rejected = sale", "'sale' means approved: a rejected conversion would reach"),
        ("pending =", "Line 1: write 'status = their word'"),
    ],
)
def test_the_admin_refuses_unusable_status_words(admin_client, spot, words, error):
    assert error in errors_of(post(admin_client, spot, status_words=words), "status_words")
    assert not OutgoingPostback.objects.exists()


def test_the_admin_refuses_an_unknown_required_macro(admin_client, spot):
    response = post(admin_client, spot, required_macros="cl_id, subid")
    assert "Unknown macro subid" in errors_of(response, "required_macros")


def test_the_admin_saves_status_words_and_required_macros(admin_client, spot):
    response = post(
        admin_client,
        spot,
        status_words="approved = sale\npending = lead\nrejected = rejected",
        required_macros="cl_id",
    )
    assert response.status_code == 302
    postback = OutgoingPostback.objects.get()
    assert (postback.required_macros, postback.status_words.count("\n")) == ("cl_id", 2)
    html = admin_client.get(reverse("admin:postbacks_outgoingpostback_change", args=[postback.pk]))
    assert 'name="status_words"' in html.content.decode()
    assert 'name="required_macros"' in html.content.decode()

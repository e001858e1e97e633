"""The admin refuses outgoing postback settings that could never work, as form
errors on the field concerned, and stores nothing (issue 10, point 7); a
partner preset keeps to the spot's limit of postbacks (point 6)."""

import pytest
from django.urls import reverse

from postbacks.models import OutgoingPostback
from tracker.models import Partner, Spot

ADD = reverse("admin:postbacks_outgoingpostback_add")


def post(admin_client, spot, **fields):
    data = {
        "spot": spot.pk,
        "name": "p",
        "url": "https://a.example/pb?c={click_id}",
        "method": "GET",
        "body_format": "none",
        "body": "",
        "timeout": "10",
        "success_status": "200-299",
        **fields,
    }
    return admin_client.post(ADD, data)


def refused(response, field, text):
    assert response.status_code == 200, "the form was accepted"
    errors = response.context["adminform"].form.errors
    assert text in " ".join(errors.get(field, [])), errors
    assert not OutgoingPostback.objects.exists()


def test_a_sound_postback_is_accepted(admin_client, spot):
    response = post(
        admin_client,
        spot,
        method="POST",
        body_format="json",
        body='{"click": "{click_id}", "sum": {sum}, "tags": ["{geo}"]}',
        goals=[spot.goals.get(token="dep").pk],
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert OutgoingPostback.objects.get().goals.get().token == "dep"


def test_goals_of_another_spot_are_refused(admin_client, spot):
    other = Spot.objects.create(name="Other", slug="other")
    response = post(admin_client, spot, goals=[other.goals.get(token="dep").pk])
    refused(response, "goals", "Goals of another spot never fire here: First deposit (Other)")


@pytest.mark.parametrize(
    "body",
    [
        '{"click": "{click_id}", }',  # a trailing comma
        '{"click": {click_id}',  # not closed
        "click={click_id}",  # a form body under JSON
    ],
)
def test_a_json_body_that_does_not_parse_with_sample_values_is_refused(admin_client, spot, body):
    response = post(admin_client, spot, method="POST", body_format="json", body=body)
    refused(response, "body", "Not valid JSON once its macros are filled in")


def test_an_inline_json_body_that_does_not_parse_is_refused(admin_client, spot):
    response = post(admin_client, spot, url='https://a.example/pb|JSON|{"c": "{click_id}"')
    refused(response, "url", "The body after |JSON| is not valid JSON")


@pytest.mark.parametrize("timeout", ["0", "-1", "61", "0.1"])
def test_a_timeout_out_of_bounds_is_refused(admin_client, spot, timeout):
    refused(post(admin_client, spot, timeout=timeout), "timeout", "between 0.5 and 60")


def test_a_body_with_get_is_refused_not_dropped(admin_client, spot):
    response = post(admin_client, spot, body_format="form", body="c={click_id}")
    refused(response, "body", "A GET request has no body")


def test_a_post_body_without_a_format_is_refused(admin_client, spot):
    response = post(admin_client, spot, method="POST", body="c={click_id}")
    refused(response, "body_format", "Choose the body's format")


def test_a_preset_cannot_add_a_sixth_postback_and_says_why(admin_client, spot, presets):
    for n in range(5):
        OutgoingPostback.objects.create(spot=spot, name=f"p{n}", url="https://a.example/")
    response = admin_client.post(
        "/admin/tracker/partner/from-preset/",
        {
            "preset": presets["keitaro"].pk,
            "spot": spot.pk,
            "outgoing_base": "https://k.example.com/abc/",
        },
    )
    assert response.status_code == 200
    assert "has 5 outgoing postbacks, the most a spot may have" in response.content.decode()
    assert not Partner.objects.exists() and OutgoingPostback.objects.count() == 5


@pytest.mark.usefixtures("outgoing")
def test_a_locked_preset_postback_is_sent_for_a_client_without_attribution(
    client, spot, presets, receiver
):
    from crm.models import Client
    from tests.receiver import drain
    from tracker.presets import apply_preset

    apply_preset(presets["keitaro"], spot, outgoing_base=receiver.url + "/k")
    OutgoingPostback.objects.create(spot=spot, name="own", url=receiver.url + "/own")
    lead = Client.objects.create(spot=spot, cl_id="kt-1")  # came without any ad attribution
    assert not lead.attributed
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback"
    params = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "5"}
    assert client.get(url, params | {"tracker.tid": "t1"}).status_code == 200
    drain()
    # Sent whatever the attribution; the spot's own postback keeps its rule.
    [got] = receiver.wait_for(1)
    assert got.path == "/k/postback?subid=kt-1&status=sale&payout=5.00&currency=USD&tid=t1"
    assert len(receiver.requests) == 1
    assert OutgoingPostback.objects.get(locked=True).all_users  # as the admin shows it

"""Outgoing postback URLs that could never be what was meant are refused with
a form error (issue 22, point 20); the test send answers within a short
deadline; the goal picker names each goal with its spot (point 18)."""

import time

import pytest
from django.urls import reverse

from postbacks.models import DeliveryAttempt, OutgoingPostback
from tests.test_outgoing_settings_refused import ADD, post, refused
from tracker.models import Spot


@pytest.mark.parametrize(
    "url, error",
    [
        (
            "https://trk.example.com/pb?subid={cl_id&sum={sum}",
            "The brace of '{cl_id' is not closed: a macro is written {name}, e.g. {click_id}.",
        ),
        ("https://trk.example.com/pb?subid={cl_id}}", "A closing brace has no opening one"),
        ("https://trk example.com/pb?subid={cl_id}", "The host 'trk example.com' has a space"),
        (
            "https://trk.example.com/pb?subid={{tracker.clickid}}",
            "{{tracker.clickid}} has double braces, which only registration links use",
        ),
        ("https://trk.example.com/pb?subid={{cl_id}}", "{{cl_id}} has double braces"),
        ("https:///pb?subid={cl_id}", "The URL has no host"),
    ],
)
def test_a_url_that_cannot_be_meant_is_refused(admin_client, spot, url, error):
    refused(post(admin_client, spot, url=url), "url", error)


def test_double_braces_in_a_body_or_header_are_refused(admin_client, spot):
    response = post(
        admin_client, spot, method="POST", body_format="form", body="c={{tracker.clickid}}"
    )
    refused(response, "body", "{{tracker.clickid}} has double braces")
    response = post(admin_client, spot, headers="X-Click: {{click_id}}")
    refused(response, "headers", "{{click_id}} has double braces")
    # A macro as the host and braces of a JSON body are single braces, balanced.
    url = 'https://{params__host}/pb?c={click_id}|JSON|{"c": "{click_id}", "n": {sum}}'
    response = post(admin_client, spot, url=url)
    assert response.status_code == 302, response.context["adminform"].form.errors


def test_the_goal_picker_names_each_goal_with_its_spot(admin_client, spot):
    other = Spot.objects.create(name="Landing", slug="landing")
    html = admin_client.get(ADD).content.decode()
    for goal, label in [
        (spot.goals.get(token="dep"), "Casino bot · First deposit (dep)"),
        (other.goals.get(token="dep"), "Landing · First deposit (dep)"),
    ]:
        assert f'<option value="{goal.pk}">{label}</option>' in html


@pytest.mark.usefixtures("outgoing")
def test_a_test_send_to_a_slow_receiver_gives_up_after_three_seconds(admin_client, spot, receiver):
    receiver.slow_paths["/slow"] = 8
    postback = OutgoingPostback.objects.create(
        spot=spot, name="slow", url=receiver.url + "/slow?c={click_id}", timeout=10
    )
    page = reverse("admin:postbacks_outgoingpostback_test", args=[postback.pk])
    assert "at most 3 s" in admin_client.get(page).content.decode()
    started = time.monotonic()
    html = admin_client.post(page, {"conversion": ""}).content.decode()
    took = time.monotonic() - started
    assert took < 5, took
    assert "Failure" in html
    attempt = DeliveryAttempt.objects.get()
    assert attempt.test and not attempt.success and attempt.duration_ms < 4000

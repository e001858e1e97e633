"""The admin side of incoming postbacks: the log, conversions, goal templates."""

from django.urls import reverse

from crm.models import Conversion
from postbacks.models import IncomingPostback
from tracker.models import Goal


def url(spot, query):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback?{query}"


def test_the_log_entry_shows_the_raw_request_outcome_and_links(admin_client, client, spot, lead):
    client.post(
        url(spot, f"clickid={lead.click_id}"),
        "tracker.event=sale&tracker.cost=3&fields.nope=1",
        content_type="application/x-www-form-urlencoded",
    )
    row = IncomingPostback.objects.get()
    page = admin_client.get(
        reverse("admin:postbacks_incomingpostback_change", args=[row.pk])
    ).content.decode()
    assert (
        f"POST /api/postbacks/{spot.postback_token}/tracker-postback?clickid={lead.click_id}"
        in (page)
    )
    assert "tracker.event=sale&amp;tracker.cost=3&amp;fields.nope=1" in page
    assert "fields.nope: no custom field" in page
    assert reverse("admin:crm_client_change", args=[lead.pk]) in page
    assert reverse("admin:crm_conversion_change", args=[row.conversion_id]) in page


def test_the_log_filters_by_spot_status_and_date(admin_client, client, spot, lead):
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=registration"))
    client.get(url(spot, "clickid=nobody&tracker.event=registration"))
    changelist = reverse("admin:postbacks_incomingpostback_changelist")
    page = admin_client.get(changelist, {"status": "unmatched", "spot__id__exact": spot.pk})
    assert list(page.context["cl"].queryset.values_list("status", flat=True)) == ["unmatched"]
    today = admin_client.get(changelist, {"received__gte": "2000-01-01 00:00:00+00:00"})
    assert today.context["cl"].queryset.count() == 2


def test_conversions_filter_by_goal_status_spot_and_date(admin_client, client, spot, lead):
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=registration"))
    client.get(url(spot, f"clickid={lead.click_id}&tracker.event=sale&status=pending"))
    changelist = reverse("admin:crm_conversion_changelist")
    page = admin_client.get(
        changelist,
        {
            "goal__token": "dep",
            "status__exact": "pending",
            "spot__id__exact": spot.pk,
            "created__gte": "2000-01-01 00:00:00+00:00",
        },
    )
    assert list(page.context["cl"].queryset) == [Conversion.objects.get(goal__token="dep")]


def goal_form(spot, **overrides):
    data = {
        "spot": spot.pk,
        "name": "Payout",
        "token": "payout",
        "aliases": "",
        "order": 5,
        "show_count": "on",
        "external_postback": "",
        "message_template": "",
    }
    data.update(overrides)
    return data


def test_a_message_template_with_an_unknown_macro_is_a_form_error(admin_client, spot):
    response = admin_client.post(
        reverse("admin:tracker_goal_add"),
        goal_form(spot, message_template="Paid {sum} to {payee}"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["message_template"]
    assert "Unknown macro {payee}" in errors["message_template"][0]
    assert not Goal.objects.filter(token="payout").exists()


def test_an_external_postback_with_an_unknown_macro_is_a_form_error(admin_client, spot):
    response = admin_client.post(
        reverse("admin:tracker_goal_add"),
        goal_form(spot, external_postback="https://t.example/?c={clickid}"),
    )
    assert (
        "Unknown macro {clickid}"
        in response.context["adminform"].form.errors["external_postback"][0]
    )


def test_a_template_of_known_macros_is_saved(admin_client, spot):
    response = admin_client.post(
        reverse("admin:tracker_goal_add"),
        goal_form(
            spot,
            message_template="Payout {sum} {currency} {player_id} {fields__x} {params__uid}",
            external_postback="https://t.example/?c={click_id}&a={action}",
        ),
    )
    assert response.status_code == 302
    assert Goal.objects.get(token="payout").message_template.startswith("Payout {sum}")

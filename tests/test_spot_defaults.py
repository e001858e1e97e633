"""A new spot is right by default (issue 22, points 3 to 6 and 18): its goals
carry the ad networks' standard event names, deposits show their sums and post
a system message, the add page shows the default goals as rows to edit, and it
shows no postback URL before the spot has one."""

import importlib
import json
import re

import pytest
from django.apps import apps
from django.urls import reverse

from crm.models import Message
from tests.receiver import drain, form_fields
from tests.test_admin import spot_form
from tracker.models import Goal, Pixel, Spot

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def events(spot, network):
    return dict(spot.goals.values_list("token", f"{network}_event"))


def test_default_goals_have_each_networks_standard_event(spot):
    assert events(spot, "facebook") == {
        "lead": "Lead",
        "reg": "CompleteRegistration",
        "dep": "Purchase",
        "redep": "Purchase",
    }
    assert events(spot, "tiktok") == {
        "lead": "SubmitForm",
        "reg": "CompleteRegistration",
        "dep": "Purchase",
        "redep": "Purchase",
    }
    assert events(spot, "google") == {
        "lead": "generate_lead",
        "reg": "sign_up",
        "dep": "purchase",
        "redep": "purchase",
    }
    assert events(spot, "yandex") == {
        "lead": "lead",
        "reg": "registration",
        "dep": "deposit",
        "redep": "redeposit",
    }


def test_deposits_show_their_sums_and_each_default_goal_has_a_message(spot):
    goals = {g.token: g for g in spot.goals.all()}
    assert goals["dep"].show_sum and goals["redep"].show_sum
    assert not goals["reg"].show_sum
    assert goals["reg"].message_template == "Registered at the partner"
    assert goals["dep"].message_template == "First deposit {sum} {currency}"
    assert goals["redep"].message_template == "Deposit {sum} {currency}"


@pytest.fixture
def graph_api(settings, receiver, outgoing):
    """A local stand-in of the Graph API, where Facebook pixels send."""
    settings.POSTBACKS_PIXEL_URLS = {**settings.POSTBACKS_PIXEL_URLS, "facebook": receiver.url}
    return receiver


def test_a_deposit_reaches_a_facebook_pixel_as_purchase(client, spot, lead, graph_api):
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="555", access_token="TOK")
    answer = client.get(
        spot.incoming_path(),
        {"clickid": lead.click_id, "tracker.event": "sale", "tracker.cost": "50"},
    )
    assert answer.status_code == 200, answer.content
    drain()
    [got] = [r for r in graph_api.wait_for(1) if r.path == "/v18.0/555/events"]
    [event] = json.loads(form_fields(got.body)["data"][0])
    assert event["event_name"] == "Purchase"
    assert event["custom_data"] == {"value": 50.0, "currency": "USD"}
    message = Message.objects.get(client=lead, kind=Message.SYSTEM)
    assert message.text.startswith("First deposit 50") and message.text.endswith("USD")


def spot_page(admin_client, spot):
    return admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk]))


def test_the_spot_page_shows_each_goals_event_next_to_the_pixel(admin_client, spot):
    Pixel.objects.create(spot=spot, network="tiktok", pixel_id="TT", access_token="t")
    page = spot_page(admin_client, spot).content.decode()
    assert 'title="First deposit">dep &rarr; Purchase</li>' in page
    assert "reg &rarr; CompleteRegistration" in page
    assert "pixel-silent" not in page


def test_a_pixel_on_without_an_event_for_a_deposit_is_warned_about(admin_client, spot):
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    spot.goals.filter(token="redep").update(facebook_event="")
    response = spot_page(admin_client, spot)
    warnings = [str(m) for m in response.context["messages"]]
    assert any("Repeat deposit (redep) has no event name" in w for w in warnings), warnings
    assert "pixel-silent" in response.content.decode()


def test_a_spot_page_of_no_spot_is_a_redirect_not_an_error(admin_client, spot):
    response = admin_client.get("/admin/tracker/spot/not-a-number/change/")
    assert response.status_code == 302


def test_a_pixel_switched_off_is_not_warned_about(admin_client, spot):
    Pixel.objects.create(spot=spot, network="google", pixel_id="G", enabled=False)
    spot.goals.filter(token="dep").update(google_event="")
    assert not list(spot_page(admin_client, spot).context["messages"])


def test_the_migration_fills_what_is_blank_and_keeps_what_was_typed(spot):
    spot.goals.update(
        facebook_event="",
        tiktok_event="",
        google_event="",
        yandex_event="",
        message_template="",
        show_sum=False,
    )
    spot.goals.filter(token="dep").update(facebook_event="Deposit", message_template="Paid {sum}")
    migration = importlib.import_module("tracker.migrations.0007_default_goal_events")
    migration.fill_default_goals(apps, None)
    goals = {g.token: g for g in spot.goals.all()}
    assert goals["dep"].facebook_event == "Deposit"
    assert goals["dep"].message_template == "Paid {sum}"
    assert goals["dep"].tiktok_event == "Purchase" and goals["redep"].facebook_event == "Purchase"
    assert goals["reg"].google_event == "sign_up" and goals["lead"].yandex_event == "lead"
    assert goals["redep"].message_template == "Deposit {sum} {currency}"
    assert goals["dep"].show_sum and goals["redep"].show_sum and not goals["reg"].show_sum


def goal_rows(rows):
    """The goals inline of the spot page as posted, one dict per row."""
    data = {"goals-TOTAL_FORMS": str(len(rows)), "goals-INITIAL_FORMS": "0"}
    for n, row in enumerate(rows):
        # What the page's select sends when left alone.
        data[f"goals-{n}-repeat_mode"] = "update"
        data.update({f"goals-{n}-{k}": v for k, v in row.items()})
    return data


DEFAULT_ROWS = [
    {"name": "Registration", "token": "reg", "aliases": "registration", "order": "0"},
    {"name": "First deposit", "token": "dep", "aliases": "sale, first_deposit", "order": "1"},
    {"name": "Repeat deposit", "token": "redep", "aliases": "resale", "order": "2"},
    {"name": "New lead", "token": "lead", "aliases": "", "order": "3"},
]


def test_the_add_page_shows_the_default_goals_as_rows(admin_client, db):
    response = admin_client.get(reverse("admin:tracker_spot_add"))
    [goals] = [f for f in response.context["inline_admin_formsets"] if f.opts.model is Goal]
    rows = [form.initial for form in goals.formset.forms]
    assert [r["token"] for r in rows] == ["reg", "dep", "redep", "lead"]
    assert rows[1]["show_sum"] and rows[1]["message_template"] == "First deposit {sum} {currency}"


def test_the_goal_rows_of_the_add_page_are_saved_as_edited(admin_client, db):
    rows = [dict(r, show_count="on") for r in DEFAULT_ROWS]
    rows[1].update(show_sum="on", revenue="on", message_template="Dep {sum}")
    rows.append({"name": "Withdrawal", "token": "withdrawal", "order": "5", "show_sum": "on"})
    data = spot_form(**goal_rows(rows))
    response = admin_client.post(reverse("admin:tracker_spot_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    spot = Spot.objects.get(slug="landing")
    goals = {g.token: g for g in spot.goals.all()}
    assert sorted(goals) == ["dep", "lead", "redep", "reg", "withdrawal"]
    assert goals["dep"].message_template == "Dep {sum}" and goals["dep"].revenue
    assert goals["redep"].aliases == "resale" and not goals["redep"].show_sum
    # The rows show no event names: the default goals get the standard ones.
    assert goals["dep"].facebook_event == "Purchase" and goals["lead"].tiktok_event == "SubmitForm"
    assert goals["withdrawal"].facebook_event == ""


def test_a_renamed_default_goal_is_not_made_again(admin_client, db):
    rows = [dict(r) for r in DEFAULT_ROWS]
    rows[1]["token"] = "deposit"
    response = admin_client.post(reverse("admin:tracker_spot_add"), spot_form(**goal_rows(rows)))
    assert response.status_code == 302, response.content.decode()[:3000]
    tokens = Spot.objects.get(slug="landing").goals.values_list("token", flat=True)
    assert sorted(tokens) == ["deposit", "lead", "redep", "reg"]


@pytest.mark.parametrize(
    "second",
    [
        {"name": "Again", "token": "dep", "order": "4"},
        {"name": "Sale", "token": "sale2", "aliases": "sale", "order": "4"},
    ],
)
def test_a_word_of_two_goals_on_the_add_page_is_a_form_error(admin_client, db, second):
    data = spot_form(**goal_rows([*DEFAULT_ROWS, second]))
    response = admin_client.post(reverse("admin:tracker_spot_add"), data)
    assert response.status_code == 200
    assert "already means the goal First deposit (dep)" in response.content.decode()
    assert not Spot.objects.exists()


def test_a_duplicate_token_on_the_spot_page_is_a_form_error(admin_client, spot):
    url = reverse("admin:tracker_spot_change", args=[spot.pk])
    page = admin_client.get(url)
    data = {}
    for formset in page.context["inline_admin_formsets"]:
        fs = formset.formset
        data.update(
            {
                f"{fs.prefix}-TOTAL_FORMS": fs.total_form_count(),
                f"{fs.prefix}-INITIAL_FORMS": fs.initial_form_count(),
            }
        )
        for form in fs.initial_forms:
            for name, field in form.fields.items():
                value = form.initial.get(name, field.initial)
                if isinstance(value, bool):
                    value = "on" if value else ""
                data[form.add_prefix(name)] = "" if value is None else value
    data.update(
        {k: v for k, v in spot_form(name=spot.name, slug=spot.slug).items() if "-" not in k}
    )
    data["goals-TOTAL_FORMS"] = 5
    data.update({"goals-4-name": "Again", "goals-4-token": "reg", "goals-4-order": "9"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "already means the goal" in response.content.decode()
    assert spot.goals.filter(token="reg").count() == 1


def test_the_add_page_shows_no_postback_url_before_there_is_one(admin_client, db):
    page = admin_client.get(reverse("admin:tracker_spot_add")).content.decode()
    assert "The postback URL appears once the spot is saved" in page
    # A token shown now would not be the one saved.
    assert not UUID_RE.search(page)


def test_a_goal_is_named_with_its_spot(spot):
    goal = spot.goals.get(token="dep")
    assert str(goal) == "Casino bot · First deposit (dep)"
    assert goal.label == "First deposit (dep)"

import pytest
from django.contrib import admin
from django.urls import reverse

from tracker.models import Goal, Spot


def admin_urls(kind):
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        if kind == "add" and not model_admin.has_add_permission(_Request()):
            continue
        yield reverse(f"admin:{meta.app_label}_{meta.model_name}_{kind}")


class _Request:
    """Enough of a request for has_add_permission of a superuser."""

    class user:  # noqa: N801
        is_active = is_staff = is_superuser = True

        @staticmethod
        def has_perm(perm, obj=None):
            return True


@pytest.mark.parametrize("url", list(admin_urls("changelist")))
def test_every_changelist_opens(admin_client, spot, lead, url):
    response = admin_client.get(url)
    assert response.status_code == 200, url


@pytest.mark.parametrize("url", list(admin_urls("add")))
def test_every_add_page_opens(admin_client, spot, url):
    response = admin_client.get(url)
    assert response.status_code == 200, url


def spot_form(**overrides):
    data = {
        "name": "Landing",
        "slug": "landing",
        "crm_enabled": "on",
        "currency": "EUR",
        "target_url": "",
        "allowed_ips": "",
        "status_map": "",
        "plain_answer": "",
    }
    for prefix in ("goals", "pixels", "partners", "custom_fields", "outgoing_postbacks"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(overrides)
    return data


def test_a_spot_added_in_the_admin_has_its_goals_and_incoming_url(admin_client):
    response = admin_client.post(reverse("admin:tracker_spot_add"), spot_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    spot = Spot.objects.get(slug="landing")
    assert sorted(spot.goals.values_list("token", flat=True)) == ["dep", "lead", "redep", "reg"]
    page = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk])).content.decode()
    assert f"http://testserver/api/postbacks/{spot.postback_token}/tracker-postback" in page
    assert "Copy</button>" in page


def test_bad_input_on_the_spot_page_is_a_form_error(admin_client):
    response = admin_client.post(
        reverse("admin:tracker_spot_add"),
        spot_form(currency="dollars", allowed_ips="10.0.0.0/8\nnot-an-ip", status_map="ok"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"currency", "allowed_ips", "status_map"}
    assert not Spot.objects.filter(slug="landing").exists()


def test_a_duplicate_goal_token_is_a_form_error(admin_client, spot):
    response = admin_client.post(
        reverse("admin:tracker_goal_add"),
        {"spot": spot.pk, "name": "Again", "token": "dep", "order": 1, "show_count": "on"},
    )
    assert response.status_code == 200
    assert (
        "token" in response.context["adminform"].form.errors
        or response.context["adminform"].form.non_field_errors()
    )
    assert Goal.objects.filter(spot=spot, token="dep").count() == 1


def test_the_regenerate_button_gives_the_spot_a_new_token(admin_client, spot):
    old = spot.postback_token
    url = reverse("admin:tracker_spot_regenerate_token", args=[spot.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url)
    assert response.status_code == 302
    spot.refresh_from_db()
    assert spot.postback_token != old


def test_the_regenerate_action_changes_every_selected_token(admin_client, spot):
    old = spot.postback_token
    admin_client.post(
        reverse("admin:tracker_spot_changelist"),
        {"action": "regenerate_tokens", "_selected_action": [spot.pk]},
    )
    spot.refresh_from_db()
    assert spot.postback_token != old


def test_log_tables_are_read_only(admin_client):
    for name in ("incomingpostback", "delivery"):
        response = admin_client.get(reverse(f"admin:postbacks_{name}_changelist"))
        assert response.status_code == 200
        assert response.context["has_add_permission"] is False


def test_a_repeated_transaction_added_by_hand_is_a_form_error(admin_client, lead):
    goal = lead.spot.goals.get(token="redep")
    lead.record_conversion("redep", tid="T-1")
    data = {
        "client": lead.pk,
        "goal": goal.pk,
        "amount": "5",
        "currency": "USD",
        "tid": "T-1",
        "status": "approved",
    }
    response = admin_client.post(reverse("admin:crm_conversion_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert lead.conversions.count() == 1


def test_a_goal_of_another_spot_is_a_form_error(admin_client, lead):
    other = Spot.objects.create(name="Other", slug="other")
    data = {
        "client": lead.pk,
        "goal": other.goals.get(token="reg").pk,
        "amount": "0",
        "currency": "USD",
        "tid": "",
        "status": "approved",
    }
    response = admin_client.post(reverse("admin:crm_conversion_add"), data)
    assert response.status_code == 200
    assert "goal" in response.context["adminform"].form.errors

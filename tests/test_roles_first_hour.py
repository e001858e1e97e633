"""Roles as a new team meets them: a team lead sets up the team's spots, a
manager reads their clients' incoming postbacks and posts no system messages,
a member without staff status is told why they cannot sign in, and a page a
role may not open says so inside the admin."""

from django.contrib.auth.models import Group
from django.urls import reverse

from crm.models import Message
from crm.visibility import MANAGERS
from postbacks.models import OutgoingPostback
from tests.team import PASSWORD
from tests.test_roles import login
from tracker.models import Pixel


def test_a_team_lead_sets_up_a_pixel_and_an_outgoing_postback(client, team, spot):
    login(client, team["lead"])
    page = client.get(reverse("admin:tracker_spot_change", args=[spot.pk]))
    assert page.status_code == 200
    add = client.post(
        reverse("admin:postbacks_outgoingpostback_add"),
        {
            "spot": spot.pk,
            "name": "Own tracker",
            "url": "https://trk.example/pb?c={cl_id}&s={status}",
            "method": "GET",
            "body_format": "none",
            "timeout": "10",
            "secret_headers": "",
            "send_approved": "on",
            "enabled": "on",
        },
    )
    assert add.status_code == 302, add.context["adminform"].form.errors
    assert OutgoingPostback.objects.filter(spot=spot, name="Own tracker").exists()
    # Pixels are set up on the spot page: its pixel rows may be added and changed.
    inlines = {f.opts.model: f for f in page.context["inline_admin_formsets"]}
    assert inlines[Pixel].has_add_permission and inlines[Pixel].has_change_permission
    assert inlines[OutgoingPostback].has_add_permission


def test_a_manager_reads_the_incoming_postbacks_of_their_clients(client, team, book):
    login(client, team["ann"])
    listing = client.get(reverse("admin:postbacks_incomingpostback_changelist"))
    assert listing.status_code == 200
    assert {row.pk for row in listing.context["cl"].result_list} == {book["ann"]["incoming"].pk}


def test_a_manager_cannot_post_a_system_message(client, team, book):
    login(client, team["ann"])
    add = reverse("admin:crm_message_add")
    form = client.get(add).context["adminform"].form
    assert Message.SYSTEM not in [value for value, _ in form.fields["kind"].choices]
    response = client.post(
        add, {"client": book["ann"]["client"].pk, "kind": Message.SYSTEM, "text": "fake"}
    )
    assert response.status_code == 200
    assert "kind" in response.context["adminform"].form.errors
    assert not Message.objects.filter(text="fake").exists()


def test_a_team_lead_may_still_post_one(client, team, book):
    login(client, team["lead"])
    form = client.get(reverse("admin:crm_message_add")).context["adminform"].form
    assert Message.SYSTEM in [value for value, _ in form.fields["kind"].choices]


def test_a_member_without_staff_status_is_told_why_at_sign_in(client, make_user):
    user = make_user("newbie", MANAGERS)
    user.is_staff = False
    user.save()
    page = client.post(
        reverse("admin:login"), {"username": "newbie", "password": PASSWORD}
    ).content.decode()
    assert "no staff status" in page
    wrong = client.post(reverse("admin:login"), {"username": "newbie", "password": "nope"})
    assert "no staff status" not in wrong.content.decode()  # only with the right password


def test_the_user_page_warns_when_a_manager_has_no_staff_status(admin_client, make_user):
    user = make_user("newbie")
    user.is_staff = False
    user.save()
    url = reverse("admin:auth_user_change", args=[user.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        {
            "username": "newbie",
            "is_active": "on",
            "groups": [Group.objects.get(name=MANAGERS).pk],
            "date_joined_0": "2026-12-01",
            "date_joined_1": "10:00:00",
        }
    )
    data.pop("is_staff", None)
    data.pop("user_permissions", None)
    data.pop("last_login", None)
    data.pop("date_joined", None)
    response = admin_client.post(url, data, follow=True)
    text = response.content.decode()
    assert "is in the group Managers but has no staff status" in text


def test_a_page_a_role_may_not_open_says_so_inside_the_admin(client, team):
    login(client, team["ann"])
    response = client.get(reverse("admin:tracker_partner_changelist"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "You may not open this page" in page
    assert reverse("admin:index") in page  # the admin's frame, with a way back


def test_check_deploy_warns_while_the_second_factor_is_not_required(settings):
    from django.core.checks import run_checks

    settings.TWO_FACTOR_REQUIRED = False
    assert "tracker.W001" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.TWO_FACTOR_REQUIRED = True
    assert "tracker.W001" not in {m.id for m in run_checks(include_deployment_checks=True)}

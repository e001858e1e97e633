"""Managers see their own clients, team leads all; new clients are dealt out in turn."""

import datetime
import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from crm import report
from crm.models import Client, DailyStat, Message
from crm.visibility import MANAGERS, TEAM_LEADS
from postbacks.loops import intake
from tracker.models import Spot


def login(client, user):
    client.force_login(user)
    return client


MODELS = {
    "client": "crm_client",
    "conversion": "crm_conversion",
    "message": "crm_message",
    "delivery": "postbacks_delivery",
}


def listed(client, name):
    response = client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_manager_lists_only_the_rows_of_their_own_clients(client, team, book, kind):
    login(client, team["ann"])
    assert listed(client, MODELS[kind]) == {book["ann"][kind].pk}


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_manager_cannot_open_another_managers_row_by_url(client, team, book, kind):
    login(client, team["ann"])
    own = client.get(reverse(f"admin:{MODELS[kind]}_change", args=[book["ann"][kind].pk]))
    assert own.status_code == 200
    for view in ("change", "history", "delete"):
        url = reverse(f"admin:{MODELS[kind]}_{view}", args=[book["bob"][kind].pk])
        assert client.get(url).status_code in (403, 404), url


def test_a_manager_does_not_see_another_managers_client_on_the_page(client, team, book):
    login(client, team["ann"])
    response = client.get(reverse("admin:crm_client_changelist"))
    assert "ann&#x27;s client" in response.content.decode()
    assert "bob&#x27;s client" not in response.content.decode()
    response = client.get(reverse("admin:crm_client_change", args=[book["bob"]["client"].pk]))
    assert b"hi bob" not in response.content


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_team_lead_sees_every_row(client, team, book, kind):
    login(client, team["lead"])
    assert listed(client, MODELS[kind]) == {book["ann"][kind].pk, book["bob"][kind].pk}
    url = reverse(f"admin:{MODELS[kind]}_change", args=[book["bob"][kind].pk])
    assert client.get(url).status_code == 200


def test_a_superuser_sees_every_client(admin_client, book):
    assert listed(admin_client, "crm_client") == {r["client"].pk for r in book.values()}


def test_staff_in_neither_group_see_only_their_own_clients(client, team, book, spot):
    loner = team["loner"]
    loner.user_permissions.add(Permission.objects.get(codename="view_client"))
    mine = Client.objects.create(spot=spot, name="loner's", manager=loner)
    login(client, loner)
    assert listed(client, "crm_client") == {mine.pk}


def test_the_incoming_log_shows_a_manager_only_their_clients(client, team, book):
    team["ann"].user_permissions.add(Permission.objects.get(codename="view_incomingpostback"))
    login(client, team["ann"])
    assert listed(client, "postbacks_incomingpostback") == {book["ann"]["incoming"].pk}


def test_the_client_card_shows_the_own_clients_fields_conversions_and_deliveries(
    client, team, book
):
    login(client, team["ann"])
    response = client.get(reverse("admin:crm_client_change", args=[book["ann"]["client"].pk]))
    page = response.content.decode()
    assert "hi ann" in page and 'id="client-deliveries"' in page
    assert "\nann</textarea>" in page  # the custom field value, editable
    assert "t-ann" in page  # the conversion's tid


def test_a_manager_writes_a_note_into_their_clients_chat(client, team, book):
    own = book["ann"]["client"]
    login(client, team["ann"])
    url = reverse("admin:crm_client_change", args=[own.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "manager"}
    data.update(
        {
            "spot": own.spot_id,
            "params": "{}",
            "note": "Called, will deposit tomorrow",
            "custom_values-TOTAL_FORMS": "1",
            "custom_values-INITIAL_FORMS": "1",
            "custom_values-0-id": own.custom_values.get().pk,
            "custom_values-0-client": own.pk,
            "custom_values-0-field": own.custom_values.get().field_id,
            "custom_values-0-value": "ann",
            "conversions-TOTAL_FORMS": "1",
            "conversions-INITIAL_FORMS": "1",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    note = own.messages.get(kind=Message.MANAGER)
    assert note.text == "Called, will deposit tomorrow" and note.author == team["ann"]


def test_a_manager_cannot_add_a_message_to_another_managers_client(client, team, book):
    login(client, team["ann"])
    response = client.post(
        reverse("admin:crm_message_add"),
        {"client": book["bob"]["client"].pk, "kind": "manager", "text": "sneaky"},
    )
    assert response.status_code == 200  # the form again, with an error
    assert "client" in response.context["adminform"].form.errors
    assert not Message.objects.filter(text="sneaky").exists()


def test_only_team_leads_may_change_the_manager_on_the_card(client, team, book):
    url = reverse("admin:crm_client_change", args=[book["ann"]["client"].pk])
    login(client, team["ann"])
    assert "manager" not in client.get(url).context["adminform"].form.fields
    client.logout()
    login(client, team["lead"])
    field = client.get(url).context["adminform"].form.fields["manager"]
    assert set(field.queryset) == {team["ann"], team["bob"], team["lead"], team["loner"]}


def stats_managers(client):
    response = client.get(
        reverse("admin:crm_dailystat_changelist"),
        {
            "date_from": (datetime.date.today() - datetime.timedelta(days=2)).isoformat(),
            "date_to": (datetime.date.today() + datetime.timedelta(days=2)).isoformat(),
            "basis": "conversion",
            "group": "manager",
        },
    )
    assert response.status_code == 200
    return {row["cells"][0]: row["cells"][1] for row in response.context["rows"]}


def test_statistics_by_manager_show_a_manager_only_their_own_figures(client, team, book):
    login(client, team["ann"])
    assert stats_managers(client) == {"ann": "1"}
    csv_url = reverse("admin:crm_dailystat_csv") + "?group=manager"
    lines = client.get(csv_url).content.decode().splitlines()
    assert lines[1].startswith("ann,") and not any(line.startswith("bob,") for line in lines)


def test_statistics_by_manager_show_a_team_lead_everyone(client, team, book):
    login(client, team["lead"])
    assert stats_managers(client) == {"ann": "1", "bob": "1"}


def test_the_report_counts_one_managers_clients_when_asked(spot, team, book):
    today = datetime.date.today()
    mine = report.build(report.Query(today, today, manager=team["ann"].pk))
    everyone = report.build(report.Query(today, today))
    assert (mine.total.leads, everyone.total.leads) == (1, 2)


# Automatic assignment


@pytest.fixture
def trio(spot, make_user):
    managers = [make_user(f"m{n}", MANAGERS) for n in range(3)]
    spot.managers.set(managers)
    spot.refresh_from_db()
    return managers


def test_a_spot_with_managers_knows_it_without_a_query(spot, trio):
    assert spot.has_managers
    spot.managers.clear()
    spot.refresh_from_db()
    assert not spot.has_managers
    trio[0].managed_spots.add(spot)  # from the user's side too
    spot.refresh_from_db()
    assert spot.has_managers


def test_new_clients_go_round_robin_to_the_spots_managers(spot, trio):
    made = [Client.objects.create(spot=spot).manager for _ in range(7)]
    assert made == [trio[0], trio[1], trio[2], trio[0], trio[1], trio[2], trio[0]]


def test_an_inactive_manager_is_skipped(spot, trio):
    trio[1].is_active = False
    trio[1].save()
    made = [Client.objects.create(spot=spot).manager for _ in range(4)]
    assert made == [trio[0], trio[2], trio[0], trio[2]]


def test_a_client_created_with_a_manager_keeps_it(spot, trio, team):
    assert Client.objects.create(spot=spot, manager=team["bob"]).manager == team["bob"]
    assert Client.objects.create(spot=spot).manager == trio[0]


def test_a_spot_without_managers_leaves_new_clients_unassigned(spot):
    assert Client.objects.create(spot=spot).manager is None


def test_clicks_bot_api_and_imports_are_assigned(client, spot, trio, tmp_path):
    spot.target_url = "https://land.example/"
    spot.save()
    assert client.get("/go/casino-bot").status_code == 302
    intake.decide_all()  # the click's client gets its manager when settled
    answer = client.post(
        "/api/clients",
        {"user_id": 5},
        content_type="application/json",
        headers={"X-Api-Key": spot.api_key},
    )
    assert answer.status_code == 201
    csv = tmp_path / "clients.csv"
    csv.write_text("user_id,name\n7,Cat\n")
    call_command("import_clients", str(csv), spot="casino-bot", stdout=io.StringIO())
    assert list(Client.objects.order_by("pk").values_list("manager", flat=True)) == [
        m.pk for m in trio
    ]


def test_the_statistics_count_an_assigned_lead_under_its_manager(spot, trio):
    Client.objects.create(spot=spot)
    assert DailyStat.objects.get(grain="*", basis=DailyStat.CLICK).manager_pk == trio[0].pk


def test_a_click_on_a_spot_with_managers_is_still_one_insert(
    client, spot, trio, django_assert_num_queries
):
    spot.target_url = "https://land.example/"
    spot.save()
    client.get("/go/casino-bot")  # reads the spot
    with django_assert_num_queries(1):  # the turn is taken when the workers settle it
        assert client.get("/go/casino-bot").status_code == 302
    intake.decide_all()
    assert list(Client.objects.order_by("pk").values_list("manager", flat=True)) == [
        trio[0].pk,
        trio[1].pk,
    ]


# Bulk reassignment


def changelist_action(client, pks, **extra):
    return client.post(
        reverse("admin:crm_client_changelist"),
        {"action": "assign_to_manager", "_selected_action": [str(pk) for pk in pks], **extra},
    )


def test_a_team_lead_assigns_clients_in_bulk_through_a_form(client, team, book):
    pks = [book["ann"]["client"].pk, book["bob"]["client"].pk]
    login(client, team["lead"])
    form = changelist_action(client, pks)
    assert form.status_code == 200
    assert "Assign clients to a manager" in form.content.decode()
    done = changelist_action(client, pks, apply="1", manager=team["bob"].pk)
    assert done.status_code == 302
    assert set(Client.objects.values_list("manager", flat=True)) == {team["bob"].pk}
    # The statistics moved with them.
    today = datetime.date.today()
    moved = report.build(report.Query(today, today, group=["manager"], manager=team["bob"].pk))
    assert moved.total.leads == 2 and moved.total.counts["dep"] == 2


def test_a_manager_has_no_assign_action(client, team, book):
    login(client, team["ann"])
    response = client.get(reverse("admin:crm_client_changelist"))
    assert "assign_to_manager" not in response.content.decode()
    changelist_action(client, [book["ann"]["client"].pk], apply="1", manager=team["ann"].pk)
    assert Client.objects.get(pk=book["ann"]["client"].pk).manager == team["ann"]


def test_the_migration_made_both_groups_with_their_permissions(db):
    # Present on a freshly migrated database without any setup of ours.
    if not Group.objects.filter(name=TEAM_LEADS).exists():
        pytest.skip("the database was flushed by an earlier transactional test")
    leads = Group.objects.get(name=TEAM_LEADS).permissions.values_list("codename", flat=True)
    managers = Group.objects.get(name=MANAGERS).permissions.values_list("codename", flat=True)
    assert "view_all_clients" in leads and "assign_client" in leads
    assert "view_all_clients" not in managers and "view_client" in managers


def test_every_assignment_advances_the_turn_once(spot, trio):
    for _ in range(5):
        Client.objects.create(spot=spot)
    assert Spot.objects.get(pk=spot.pk).assigned == 5

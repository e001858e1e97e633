"""The admin's holes closed with the roles' change: a test per hole, each stating the exact
behaviour (before the change a foreign id named its row, a view-only manager dropped and
resent deliveries, and actions and custom views left no history)."""

from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from crm.models import Client, Message
from postbacks.models import Delivery, IncomingPostback
from tests.test_roles import login


def test_a_foreign_id_in_the_add_forms_url_names_no_row(client, team, book):
    ann, bob = book["ann"], book["bob"]
    theirs, _ = bob["client"].record_conversion("dep", Decimal("777.77"), "USD", tid="t-777")
    login(client, team["ann"])
    add = reverse("admin:crm_message_add")

    page = client.get(add, {"client": bob["client"].pk}).content.decode()
    assert "bob&#x27;s client" not in page and "bob's client" not in page
    assert bob["client"].click_id not in page
    assert "777.77" in str(theirs)
    assert str(theirs) not in client.get(add, {"conversion": theirs.pk}).content.decode()
    # Her own rows are named as before.
    assert "ann&#x27;s client" in client.get(add, {"client": ann["client"].pk}).content.decode()
    own = ann["conversion"]
    assert str(own) in client.get(add, {"conversion": own.pk}).content.decode()

    response = client.post(
        add, {"client": bob["client"].pk, "kind": Message.MANAGER, "text": "sneaky"}
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["client"]
    assert not Message.objects.filter(text="sneaky").exists()


def deliveries():
    return list(Delivery.objects.order_by("pk").values_list("pk", "status", "attempts"))


def run(client, action, rows, follow=False):
    changelist = reverse("admin:postbacks_delivery_changelist")
    chosen = {"action": action, "_selected_action": [row.pk for row in rows]}
    return client.post(changelist, chosen, follow=follow)


def test_a_view_only_manager_cannot_drop_or_resend(client, team, book):
    own = book["ann"]
    made = {"conversion": own["conversion"], "spot": own["conversion"].spot}
    made["postback"] = own["delivery"].postback
    held = [Delivery.objects.create(**made, status=Delivery.HELD) for _ in range(2)]
    sent = Delivery.objects.create(**made, status=Delivery.SUCCESS, attempts=1)
    failed = Delivery.objects.create(**made, status=Delivery.FAILED, attempts=10)
    rows = [*held, sent]
    today = timezone.localdate().isoformat()
    resend_failed = reverse("admin:postbacks_delivery_resend_failed")

    login(client, team["ann"])
    before = deliveries()
    for action in ("drop_held", "resend_selected"):
        response = run(client, action, rows, follow=True)
        assert deliveries() == before, action
        assert [m.level_tag for m in response.context["messages"]] == ["error"], action
    for response in (
        client.get(resend_failed),
        client.post(resend_failed, {"since": today, "until": today}),
    ):
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:postbacks_delivery_changelist")
        assert deliveries() == before

    client.logout()
    login(client, team["lead"])
    assert run(client, "drop_held", rows).status_code == 302
    assert [d.status for d in Delivery.objects.filter(pk__in=[h.pk for h in held])] == [
        Delivery.SKIPPED,
        Delivery.SKIPPED,
    ]
    assert Delivery.objects.get(pk=sent.pk).status == Delivery.SUCCESS
    assert run(client, "resend_selected", rows).status_code == 302
    resent = Delivery.objects.filter(pk__in=[r.pk for r in rows])
    assert {(d.status, d.attempts) for d in resent} == {(Delivery.PENDING, 0)}
    client.post(resend_failed, {"since": today, "until": today})
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (Delivery.PENDING, 0)


def form_data(form, **changes):
    """What a browser posts back for `form` as shown, with `changes`."""
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue  # an empty box, an unticked checkbox
        data[name] = "on" if value is True else value
    return {**data, **changes}


def change_through_the_form(client, name, obj, **changes):
    url = reverse(f"admin:{name}_change", args=[obj.pk])
    page = client.get(url)
    assert page.status_code == 200 and page.context["has_change_permission"], name
    form = page.context["adminform"].form
    response = client.post(url, form_data(form, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors


def test_who_did_what_is_kept_in_each_objects_history(client, team, book, spot):
    own = book["ann"]
    lead = team["lead"]
    login(client, lead)
    held = Delivery.objects.create(
        conversion=own["conversion"],
        spot=spot,
        postback=own["delivery"].postback,
        status=Delivery.HELD,
    )
    assert run(client, "drop_held", [held]).status_code == 302
    assert run(client, "resend_selected", [own["delivery"]]).status_code == 302

    # Two postbacks for a click id no client has yet, replayed once it has.
    for event in ("reg", "dep"):
        client.get(
            f"/api/postbacks/{spot.postback_token}/tracker-postback?clickid=late-1"
            f"&tracker.event={event}"
        )
    by_view, by_action = IncomingPostback.objects.filter(status="unmatched").order_by("pk")
    Client.objects.create(spot=spot, cl_id="late-1")
    client.post(reverse("admin:postbacks_incomingpostback_replay", args=[by_view.pk]))
    client.post(
        reverse("admin:postbacks_incomingpostback_changelist"),
        {"action": "replay_selected", "_selected_action": [by_action.pk]},
    )

    client.post(reverse("admin:tracker_spot_regenerate_token", args=[spot.pk]))
    client.post(
        reverse("admin:tracker_spot_changelist"),
        {"action": "regenerate_tokens", "_selected_action": [spot.pk]},
    )
    change_through_the_form(client, "crm_conversion", own["conversion"], status="rejected")
    postback = own["delivery"].postback
    change_through_the_form(
        client, "postbacks_outgoingpostback", postback, url="https://t.example/v2?c={click_id}"
    )

    done = [
        ("postbacks_delivery", held, "Dropped: held, never to be sent."),
        ("postbacks_delivery", own["delivery"], "Resent (same delivery id)."),
        ("postbacks_incomingpostback", by_view, "Replayed: accepted."),
        ("postbacks_incomingpostback", by_action, "Replayed: accepted."),
        ("tracker_spot", spot, "Regenerated the postback token."),
        ("crm_conversion", own["conversion"], "Changed Status."),
        ("postbacks_outgoingpostback", postback, "Changed URL template."),
    ]
    for name, obj, message in done:
        entries = LogEntry.objects.filter(object_id=str(obj.pk), user=lead)
        entries = [e for e in entries if e.content_type.model_class() is type(obj)]
        assert message in [e.get_change_message() for e in entries], (name, obj)
        history = client.get(reverse(f"admin:{name}_history", args=[obj.pk]))
        shown = [e.get_change_message() for e in history.context["action_list"]]
        assert message in shown, (name, shown)
        assert message in history.content.decode()
    # The view and the action each wrote their own line.
    spot_lines = LogEntry.objects.filter(object_id=str(spot.pk), user=lead)
    assert [e.get_change_message() for e in spot_lines].count(
        "Regenerated the postback token."
    ) == 2

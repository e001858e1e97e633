"""A first deposit sent again without a tid is a repeat deposit, never an
overwrite of the first; the log row says what each request did (issue 22,
point 9)."""

from decimal import Decimal

import pytest

from crm.models import Conversion
from postbacks.models import IncomingPostback


def send(client, spot, **params):
    answer = client.get(f"/api/postbacks/{spot.postback_token}/tracker-postback", params)
    assert answer.status_code == 200, answer.content
    return answer.json(), IncomingPostback.objects.order_by("id").last()


def deposits(lead):
    return list(
        Conversion.objects.filter(client=lead)
        .exclude(goal__token="lead")
        .order_by("id")
        .values_list("goal__token", "amount", "tid")
    )


@pytest.mark.parametrize(
    ("dialect", "word"),
    [
        ({"goal": "dep", "sum": "{}"}, "dep"),
        ({"tracker.event": "first_deposit", "tracker.cost": "{}"}, "first_deposit"),
        ({"tracker.event": "sale", "tracker.cost": "{}"}, "sale"),
    ],
)
def test_a_second_first_deposit_without_a_tid_is_a_repeat_deposit(
    client, spot, lead, dialect, word
):
    def deposit(amount):
        params = {k: v.format(amount) for k, v in dialect.items()}
        return send(client, spot, clickid=lead.click_id, **params)

    first, first_row = deposit(50)
    second, second_row = deposit(30)
    assert (first["status"], first["goal"], first["warnings"]) == ("accepted", "dep", [])
    assert (second["status"], second["goal"], second["duplicate"]) == ("accepted", "redep", False)
    dep = Conversion.objects.get(goal__token="dep", client=lead)
    assert second["warnings"] == [
        f"Counted as a repeat deposit (redep): this client's first deposit is conversion "
        f"{dep.pk} (50.00 USD); it has no tid, so only the admin can change it."
    ]
    assert deposits(lead) == [("dep", Decimal("50"), ""), ("redep", Decimal("30"), "")]
    assert (first_row.status, second_row.status) == ("accepted", "accepted")
    assert second_row.warnings == second["warnings"][0]


def test_a_first_deposit_with_a_new_tid_says_how_to_change_the_first(client, spot, lead):
    send(client, spot, clickid=lead.click_id, goal="dep", sum="50", tid="a")
    again, _ = send(client, spot, clickid=lead.click_id, goal="dep", sum="30", tid="b")
    assert again["goal"] == "redep"
    assert again["warnings"][0].endswith(
        "(50.00 USD); send its tid ('a') to change that deposit instead."
    )
    assert deposits(lead) == [("dep", Decimal("50"), "a"), ("redep", Decimal("30"), "b")]


def test_sale_with_a_new_tid_is_the_seeds_repeat_deposit_and_needs_no_warning(client, spot, lead):
    send(client, spot, clickid=lead.click_id, **{"tracker.event": "sale", "tracker.tid": "a"})
    again, _ = send(client, spot, clickid=lead.click_id, **{"tracker.event": "sale", "tid": "b"})
    assert (again["goal"], again["warnings"]) == ("redep", [])


def test_the_same_tid_changes_that_deposit_and_the_row_says_what_changed(client, spot, lead):
    base = {"clickid": lead.click_id, "tracker.event": "sale", "tracker.tid": "t1"}
    first, _ = send(client, spot, **base, **{"tracker.cost": "50"})
    changed, row = send(client, spot, **base, **{"tracker.cost": "30", "status": "rejected"})
    dep = Conversion.objects.get(goal__token="dep", client=lead)
    assert (changed["status"], changed["conversion"], changed["goal"]) == ("updated", dep.pk, "dep")
    assert (dep.amount, dep.status) == (Decimal("30"), "rejected")
    assert row.status == IncomingPostback.UPDATED == "updated"
    assert row.warnings == (
        f"Updated conversion {dep.pk} (dep, tid 't1'): status approved -> rejected; "
        "amount 50.00 -> 30.00."
    )
    # The first request's row still says what it did, whatever happened since.
    assert IncomingPostback.objects.order_by("id").first().status == "accepted"

    again, row = send(client, spot, **base, **{"tracker.cost": "30", "status": "rejected"})
    assert (again["status"], row.status) == ("duplicate", "duplicate")
    assert row.warnings == f"Duplicate of conversion {dep.pk} (dep, tid 't1'): nothing changed."

    pending, row = send(client, spot, **base, **{"tracker.status": "pending"})
    assert (pending["status"], row.status) == ("updated", "updated")
    assert row.warnings.endswith("status rejected -> pending.")


def test_the_log_lists_updated_as_its_own_status(client, spot, lead):
    spot.goals.filter(token="dep").update(repeat_mode="update")  # a new amount replaces
    base = {"clickid": lead.click_id, "goal": "dep", "tid": "t1"}
    send(client, spot, **base, sum="50")
    send(client, spot, **base, sum="40")
    send(client, spot, **base, sum="40")
    statuses = IncomingPostback.objects.order_by("id").values_list("status", flat=True)
    assert list(statuses) == ["accepted", "updated", "duplicate"]
    assert IncomingPostback.objects.filter(status=IncomingPostback.UPDATED).count() == 1

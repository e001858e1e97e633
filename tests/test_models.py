import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.models import Client, Conversion, CustomField, CustomFieldValue
from tracker.models import Goal, Spot


def test_a_new_spot_gets_reg_dep_redep_and_lead_with_their_aliases(spot):
    goals = {g.token: g for g in spot.goals.all()}
    assert list(goals) == ["reg", "dep", "redep", "lead"]
    # Statistics count leads as clients: the goal has no column of its own.
    assert not goals["lead"].show_count and not goals["lead"].show_sum
    assert goals["reg"].words == ["reg", "registration"]
    assert goals["dep"].words == ["dep", "sale", "first_deposit"]
    assert goals["redep"].words == ["redep", "resale", "recurring_deposit"]


def test_saving_a_spot_again_does_not_add_goals(spot):
    spot.name = "Renamed"
    spot.save()
    assert spot.goals.count() == 4


def test_goal_token_is_unique_per_spot(spot):
    with pytest.raises(IntegrityError), transaction.atomic():
        Goal.objects.create(spot=spot, name="Again", token="reg")
    other = Spot.objects.create(name="Other", slug="other")
    assert other.goals.filter(token="reg").exists()


def test_a_goal_alias_may_not_take_a_word_of_another_goal(spot):
    goal = Goal(spot=spot, name="Payout", token="payout", aliases="withdrawal, sale")
    with pytest.raises(ValidationError) as e:
        goal.full_clean()
    assert "sale" in str(e.value.message_dict["aliases"])


def test_goal_for_word_finds_tokens_and_aliases(spot):
    assert spot.goal_for_word("Registration").token == "reg"
    assert spot.goal_for_word("recurring_deposit").token == "redep"
    with pytest.raises(Goal.DoesNotExist):
        spot.goal_for_word("payout")


def test_postback_token_is_a_random_uuid4_and_can_be_regenerated(spot):
    old = spot.postback_token
    assert isinstance(old, uuid.UUID) and old.version == 4
    spot.regenerate_token()
    spot.refresh_from_db()
    assert spot.postback_token != old and spot.postback_token.version == 4
    assert str(spot.postback_token) in spot.incoming_url()


def test_click_ids_are_long_random_and_unique(spot):
    ids = {Client.objects.create(spot=spot).click_id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 for i in ids)
    first = Client.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.create(spot=spot, click_id=first.click_id)


def test_custom_field_key_is_unique_per_spot(spot):
    CustomField.objects.create(spot=spot, key="last_deposit", type="money")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomField.objects.create(spot=spot, key="last_deposit")
    other = Spot.objects.create(name="Other", slug="other")
    CustomField.objects.create(spot=other, key="last_deposit")


def test_one_conversion_per_client_goal_and_tid(lead):
    dep = lead.spot.goals.get(token="redep")
    Conversion.objects.create(spot=lead.spot, client=lead, goal=dep, tid="t1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversion.objects.create(spot=lead.spot, client=lead, goal=dep, tid="t1")
    # Without a tid the database allows repeats (repeat deposits may lack one).
    Conversion.objects.create(spot=lead.spot, client=lead, goal=dep)
    Conversion.objects.create(spot=lead.spot, client=lead, goal=dep)


@pytest.mark.parametrize(
    ("type", "raw", "stored"),
    [
        ("money", "12,50", "12.50"),
        ("number", "1 000.50", "1000.5"),
        ("date", "21.03.2025", "2025-03-21"),
        ("boolean", "yes", "true"),
        ("text", "  hello ", "hello"),
    ],
)
def test_custom_field_values_are_stored_in_their_type(lead, type, raw, stored):
    field = CustomField.objects.create(spot=lead.spot, key="f", type=type)
    value = CustomFieldValue(client=lead, field=field, value=raw)
    value.full_clean()
    assert value.value == stored


def test_a_value_of_the_wrong_type_is_a_validation_error(lead):
    field = CustomField.objects.create(spot=lead.spot, key="last_deposit", type="money")
    with pytest.raises(ValidationError) as e:
        CustomFieldValue(client=lead, field=field, value="lots").full_clean()
    assert "not a number" in str(e.value)


def test_sale_is_the_first_deposit_then_a_repeat(lead):
    first, outcome = lead.record_conversion("sale", amount=Decimal("10"))
    assert (first.goal.token, outcome) == ("dep", "created")
    second, outcome = lead.record_conversion("sale", amount=Decimal("20"))
    assert (second.goal.token, outcome) == ("redep", "created")
    assert first.currency == "USD"


def test_the_same_tid_again_is_a_duplicate_or_an_update(lead):
    conv, _ = lead.record_conversion("resale", amount=Decimal("5"), tid="tx-9")
    again, outcome = lead.record_conversion("resale", amount=Decimal("5"), tid="tx-9")
    assert (again.pk, outcome) == (conv.pk, "duplicate")
    changed, outcome = lead.record_conversion(
        "resale", amount=Decimal("5"), tid="tx-9", status="rejected"
    )
    assert (changed.pk, outcome, changed.status) == (conv.pk, "updated", "rejected")
    assert lead.conversions.count() == 1


def test_a_client_registers_once(lead):
    reg, _ = lead.record_conversion("registration")
    again, outcome = lead.record_conversion("reg")
    assert (again.pk, outcome) == (reg.pk, "duplicate")


def test_an_amount_of_thirty_digits_is_refused_not_crashed():
    from crm.values import parse_amount

    with pytest.raises(ValueError, match="too large"):
        parse_amount("1" * 30)

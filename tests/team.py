"""The team as fixtures: two managers, a team lead, staff in neither group,
and each manager's book of a client with its rows."""

import pytest
from django.contrib.auth.models import Group, Permission

from crm.models import Client, CustomField, CustomFieldValue, Message
from crm.visibility import MANAGERS, TEAM_LEADS
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from postbacks.team import setup_groups

PASSWORD = "team-password-1"


@pytest.fixture
def groups(db):
    # A flushed test database lost what the migration made: make it again.
    setup_groups(Group, Permission)


@pytest.fixture
def make_user(groups, django_user_model):
    def make(username, group=None, **extra):
        user = django_user_model.objects.create_user(
            username, password=PASSWORD, is_staff=True, **extra
        )
        if group:
            user.groups.add(Group.objects.get(name=group))
        return user

    return make


@pytest.fixture
def team(make_user):
    return {
        "ann": make_user("ann", MANAGERS),
        "bob": make_user("bob", MANAGERS),
        "lead": make_user("lead", TEAM_LEADS),
        "loner": make_user("loner"),  # staff in neither group
    }


@pytest.fixture
def book(spot, team):
    """A client of each manager with a conversion, a message, a field value and a delivery."""
    postback = OutgoingPostback.objects.create(spot=spot, name="T", url="https://t.example/")
    field = CustomField.objects.create(spot=spot, key="level")
    rows = {}
    for name in ("ann", "bob"):
        client = Client.objects.create(spot=spot, name=f"{name}'s client", manager=team[name])
        conversion, _ = client.record_conversion("dep", 10, "USD", tid=f"t-{name}")
        message = Message.objects.create(client=client, kind=Message.CLIENT, text=f"hi {name}")
        CustomFieldValue.objects.create(client=client, field=field, value=name)
        delivery = Delivery.objects.create(
            conversion=conversion, spot=spot, postback=postback, status=Delivery.SKIPPED
        )
        incoming = IncomingPostback.objects.create(
            method="GET", path="/p", query=f"clickid={client.click_id}", client=client
        )
        rows[name] = {
            "client": client,
            "conversion": conversion,
            "message": message,
            "delivery": delivery,
            "incoming": incoming,
        }
    return rows

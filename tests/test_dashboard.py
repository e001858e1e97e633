"""The admin home is a dashboard: the day's figures per spot from the rollup,
what is failing now, the backlog, unmatched postbacks, a getting-started list
on an empty install, and a menu in the order a team uses it."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from crm.models import Client
from postbacks.delivery.batch import send_due
from postbacks.delivery.fanout import accept
from postbacks.models import Delivery, IncomingPostback, OutgoingPostback
from tracker.models import Pixel, Spot

HOME = "/admin/"


def dash(response):
    assert response.status_code == 200
    return response.context["dash"]


def lines_by_spot(d):
    return {line.name: line for line in d["spots"]}


def test_the_home_shows_today_and_yesterday_per_spot_from_the_rollup(admin_client, spot):
    other = Spot.objects.create(name="Poker landing", slug="poker")
    for k in range(3):
        client = Client.objects.create(spot=spot, advert_campaign_id="c1")
        client.record_conversion("registration")
        client.record_conversion("sale", Decimal("1234.5"), "USD", tid=f"t{k}")
    old = Client.objects.create(spot=other)
    old.record_conversion("sale", Decimal("10"), "USD", tid="y1")
    yesterday = timezone.now() - datetime.timedelta(days=1)
    Client.objects.filter(pk=old.pk).update(created=yesterday)
    old.conversions.update(created=yesterday)
    call_command("rebuild_stats")

    d = dash(admin_client.get(HOME))
    lines = lines_by_spot(d)
    today = lines["Casino bot"].today
    assert (today.leads, today.regs, today.deposits, today.conversions) == (3, 3, 3, 6)
    assert today.revenue == Decimal("3703.5")
    assert lines["Poker landing"].yesterday.revenue == Decimal("10")
    assert lines["Poker landing"].today.leads == 0
    assert d["total"].today.revenue == Decimal("3703.5")
    html = admin_client.get(HOME).content.decode()
    assert "3,703.50" in html and 'id="dash-numbers"' in html
    # The last two weeks as pictures: counts, and revenue on its own scale.
    assert '<svg id="dash-chart-counts"' in html and '<svg id="dash-chart-revenue"' in html


def test_a_manager_sees_only_the_figures_of_their_own_clients(client, book, team, spot):
    bob = Client.objects.create(spot=spot, manager=team["bob"])
    bob.record_conversion("sale", Decimal("500"), "USD", tid="bob-2")
    IncomingPostback.objects.create(
        method="GET", path="/p", spot=spot, status=IncomingPostback.UNMATCHED
    )
    client.force_login(team["ann"])
    d = dash(client.get(HOME))
    assert d["total"].today.revenue == Decimal("10")  # ann's deposit, not bob's 10 + 500
    assert d["total"].today.leads == 1
    # Unmatched postbacks have no client yet: not a manager's to see.
    assert d["unmatched"] is None
    assert d["steps"] is None  # setting spots up is a team lead's
    client.force_login(team["lead"])
    d = dash(client.get(HOME))
    assert d["total"].today.revenue == Decimal("520") and d["unmatched"] == 1


@pytest.mark.usefixtures("outgoing")
def test_a_failing_postback_and_the_backlog_show_on_the_home(
    admin_client, spot, lead, receiver, settings
):
    settings.POSTBACKS_DELAY_SCALE = 1.0  # the retry waits: the delivery stays retrying
    postback = OutgoingPostback.objects.create(spot=spot, name="Keitaro", url=receiver.url + "/pb")
    postback.goals.set(spot.goals.filter(token="dep"))
    for _ in range(5):
        receiver.reply(500, "down for maintenance")
    accept(lead, "sale", amount=Decimal("40"), currency="USD", tid="f1")
    send_due()
    assert Delivery.objects.filter(attempts__gt=0, status=Delivery.PENDING).exists()
    # Overdue for two hours: another client's (one behind the retry above waits, not late).
    other, _ = Client.objects.create(spot=spot, name="Bo").record_conversion("reg")
    Delivery.objects.create(
        conversion=other,
        spot=spot,
        postback=OutgoingPostback.objects.get(),
        next_attempt=timezone.now() - datetime.timedelta(hours=2),
    )

    d = dash(admin_client.get(HOME))
    [failing] = d["failing"]
    assert failing["target"].name == "Keitaro" and failing["target"].retrying >= 1
    assert "500" in failing["reason"]
    assert f"postback__id__exact={OutgoingPostback.objects.get().pk}" in failing["link"]
    assert d["backlog"].due == 1 and d["backlog_age"] == "2 h"
    html = admin_client.get(HOME).content.decode()
    assert re.search(r'id="tile-failing" class="alert"', html)
    assert admin_client.get(failing["link"]).status_code == 200


def test_unmatched_postbacks_waiting_are_counted_and_linked(admin_client, spot):
    for status in (IncomingPostback.UNMATCHED, IncomingPostback.UNMATCHED, "accepted"):
        IncomingPostback.objects.create(method="GET", path="/p", spot=spot, status=status)
    d = dash(admin_client.get(HOME))
    assert d["unmatched"] == 2
    listed = admin_client.get(d["unmatched_link"])
    assert listed.status_code == 200 and listed.context["cl"].result_count == 2


def test_an_empty_install_gets_four_linked_steps_ticked_as_they_are_done(admin_client, spot):
    Spot.objects.all().delete()
    steps = dash(admin_client.get(HOME))["steps"]
    assert [s["done"] for s in steps] == [False, False, False, False]
    assert steps[0]["link"] == reverse("admin:tracker_spot_add")
    for step in steps:
        assert admin_client.get(step["link"].split("#")[0]).status_code == 200

    spot = Spot.objects.create(name="Bot", slug="bot")
    Pixel.objects.create(spot=spot, network="facebook", pixel_id="1", access_token="t")
    steps = dash(admin_client.get(HOME))["steps"]
    assert [s["done"] for s in steps] == [True, False, True, False]
    assert steps[1]["link"].startswith(reverse("admin:tracker_spot_change", args=[spot.pk]))
    html = admin_client.get(HOME).content.decode()
    assert 'id="getting-started"' in html and html.count('class="done"') == 2

    IncomingPostback.objects.create(method="GET", path="/p", spot=spot)
    client = Client.objects.create(spot=spot)
    conversion, _ = client.record_conversion("registration")
    Delivery.objects.create(conversion=conversion, spot=spot, status=Delivery.SUCCESS)
    assert dash(admin_client.get(HOME))["steps"] is None  # all done: the list goes


def test_the_menu_is_ordered_by_use_and_named_as_buyers_say(admin_client, settings):
    settings.REDIS_URL = ""
    response = admin_client.get(HOME)
    sections = response.context["app_list"]
    first = sections[0]
    assert first["name"] == "Daily work"
    assert [m["name"] for m in first["models"]] == [
        "Spots",
        "Clients",
        "Statistics",
        "Incoming postbacks",
        "Deliveries",
        "Outgoing postbacks",
    ]
    names = [m["name"] for s in sections for m in s["models"]]
    assert "Authenticator apps" in names and "TOTP devices" not in names
    html = response.content.decode()
    assert "django_rq" not in html and "Django-RQ" not in html  # no Redis, no queues page
    # A section is no app: its caption links nowhere, so no section is "current".
    assert "current-app" not in html
    # A list is called by what it holds.
    spots = admin_client.get(reverse("admin:tracker_spot_changelist")).content.decode()
    assert "<h1>Spots</h1>" in spots and "Select spot to change" not in spots
    # The spot's section of network rules says what it holds.
    spot = Spot.objects.create(name="Bot", slug="bot")
    form = admin_client.get(reverse("admin:tracker_spot_change", args=[spot.pk])).content.decode()
    assert "Network IPs, status words and answer" in form and ">Callers<" not in form
    # One app's own page keeps Django's list of that app.
    crm = admin_client.get(reverse("admin:app_list", args=["crm"]))
    assert [a["app_label"] for a in crm.context["app_list"]] == ["crm"]


def test_with_redis_the_queues_page_sits_under_operations_by_its_plain_name(settings):
    from tracker.site import menu

    settings.REDIS_URL = "redis://127.0.0.1:6379/0"

    def app(label, *names):
        return {
            "app_label": label,
            "models": [{"object_name": n, "name": n} for n in names],
        }

    sections = menu([app("django_rq", "Dashboard"), app("tracker", "Goal", "Spot")])
    assert [(s["name"], [m["name"] for m in s["models"]]) for s in sections] == [
        ("Daily work", ["Spot"]),
        ("Set-up", ["Goal"]),
        ("Operations", ["Background queues"]),
    ]

"""Two managers and a team lead log in to the admin and see what each should."""

import pytest
from django.contrib.auth.models import Group, Permission

from crm.models import Client
from crm.visibility import MANAGERS, TEAM_LEADS
from postbacks.team import setup_groups
from tracker.models import Spot

pytestmark = pytest.mark.browser

PASSWORD = "team-browser-pass-1"
WIDTH = 1366  # the laptop screen the client list must fit


@pytest.fixture
def office(transactional_db, django_user_model):
    setup_groups(Group, Permission)
    users = {}
    for name, group in (("ann", MANAGERS), ("bob", MANAGERS), ("lead", TEAM_LEADS)):
        users[name] = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        users[name].groups.add(Group.objects.get(name=group))
    spot = Spot.objects.create(name="Casino bot with a long name", slug="casino")
    spot.managers.set([users["ann"], users["bob"]])
    spot.refresh_from_db()
    for k in range(6):
        # Dealt out in turn: ann, bob, ann, bob...
        client = Client.objects.create(
            spot=spot,
            name=f"Client number {k} with a rather long name",
            geo="DE",
            advert_campaign_id=f"campaign-{k}-spring-sale-lookalike-audience",
            user_id=1000 + k,
        )
        client.record_conversion("reg")
        client.record_conversion("sale", 25, "USD" if k % 2 else "EUR", tid=f"a{k}")
        client.record_conversion("sale", 12345.5, "USD", tid=f"b{k}")
    return users


def log_in(browser, live_server, username):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    page.goto(f"{live_server.url}/admin/crm/client/")
    page.wait_for_selector("#result_list")
    return context, page


def names_on(page):
    texts = page.locator("#result_list tbody th.field-client").all_inner_texts()
    return {text.split(" with")[0] for text in texts}


def fits(page):
    return page.evaluate(
        """() => {
            const table = document.querySelector('#result_list');
            const box = table.closest('.results');
            return {table: table.scrollWidth, viewport: window.innerWidth,
                    box: box.scrollWidth, boxVisible: box.clientWidth,
                    page: document.documentElement.scrollWidth};
        }"""
    )


def test_each_sees_their_own_clients_and_the_lead_sees_all(browser, live_server, office):
    expected = {
        "ann": {f"Client number {k}" for k in (0, 2, 4)},
        "bob": {f"Client number {k}" for k in (1, 3, 5)},
    }
    for name in ("ann", "bob", "lead"):
        context, page = log_in(browser, live_server, name)
        try:
            shown = names_on(page)
            if name == "lead":
                assert shown == expected["ann"] | expected["bob"]
                headers = page.locator("#result_list thead th").all_inner_texts()
                assert "MANAGER" in [h.strip().upper() for h in headers]
                assert page.locator("select[name=action] option[value=assign_to_manager]").count()
            else:
                assert shown == expected[name]
                assert not page.locator("option[value=assign_to_manager]").count()
            assert page.locator("td.field-goal").first.inner_text() == "redep"
            size = fits(page)
            assert size["table"] <= size["viewport"], size
            assert size["box"] <= size["boxVisible"], size  # no horizontal scroll bar
            assert size["page"] <= size["viewport"], size
            # Someone else's client by URL: not the page.
            other = Client.objects.exclude(manager=office.get(name)).first()
            answer = page.goto(f"{live_server.url}/admin/crm/client/{other.pk}/change/")
            if name == "lead":
                assert answer.status == 200
            else:
                assert answer.status == 404
        finally:
            context.close()

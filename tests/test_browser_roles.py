"""Roles and sign-in as people meet them in Chromium: a manager cannot read or
drop beyond their role, a locked-out login says so, a team lead signs in with
a TOTP code. Screenshots go to $SCREENSHOT_DIR when set."""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from crm.models import Client
from crm.visibility import MANAGERS, TEAM_LEADS
from postbacks.models import Delivery, OutgoingPostback
from postbacks.team import setup_groups
from tracker.models import Spot

pytestmark = pytest.mark.browser

PASSWORD = "roles-browser-pass-1"
SIZES = [(1366, 768), (1920, 1080)]


@pytest.fixture
def office(transactional_db, django_user_model):
    setup_groups(Group, Permission)
    users = {}
    for name, group in (("ann", MANAGERS), ("bob", MANAGERS), ("lead", TEAM_LEADS)):
        users[name] = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        users[name].groups.add(Group.objects.get(name=group))
    spot = Spot.objects.create(name="Casino bot", slug="casino")
    postback = OutgoingPostback.objects.create(
        spot=spot, name="Keitaro", url="https://t.example/", enabled=False
    )
    for name in ("ann", "bob"):
        client = Client.objects.create(
            spot=spot, name=f"{name.title()} Secretclient", manager=users[name]
        )
        conversion, _ = client.record_conversion("dep", 777.77, "USD", tid=f"t-{name}")
        Delivery.objects.create(
            conversion=conversion, spot=spot, postback=postback, status=Delivery.HELD
        )
    return users


@pytest.fixture
def shots(tmp_path):
    return Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)


def open_login(browser, live_server, width=1366, height=768):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/")
    return context, page


def submit_login(page, username, password=PASSWORD, code=""):
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")


def page_width(page):
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_a_manager_neither_reads_a_foreign_client_nor_drops_held_events(
    browser, live_server, office, shots
):
    bob_client = Client.objects.get(manager=office["bob"])
    context, page = open_login(browser, live_server)
    try:
        submit_login(page, "ann")
        page.wait_for_selector("#site-name")
        page.goto(f"{live_server.url}/admin/crm/message/add/?client={bob_client.pk}")
        page.wait_for_selector("#id_client")
        text = page.inner_text("#content")
        assert "Bob Secretclient" not in text and bob_client.click_id not in text
        page.screenshot(path=shots / "message-add-foreign-client-1366.png", full_page=True)

        # Drop held is not offered; posted anyway, it says so and drops nothing.
        page.goto(f"{live_server.url}/admin/postbacks/delivery/")
        assert not page.locator("select[name=action] option[value=drop_held]").count()
        own = Delivery.objects.get(conversion__client__manager=office["ann"])
        page.evaluate(
            """([pk]) => {
                const form = document.querySelector('#changelist-form');
                for (const [name, value] of [['action', 'drop_held'], ['_selected_action', pk],
                                             ['index', '0']]) {
                    const input = document.createElement('input');
                    input.type = 'hidden'; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                form.submit();
            }""",
            [str(own.pk)],
        )
        page.wait_for_selector("ul.messagelist")
        assert "You may not run “drop_held”" in page.inner_text("ul.messagelist")
        page.screenshot(path=shots / "manager-drop-refused-1366.png", full_page=True)
        assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.HELD}
    finally:
        context.close()


def test_a_locked_out_login_says_so(browser, live_server, office, shots):
    context, page = open_login(browser, live_server)
    try:
        for _ in range(5):
            submit_login(page, "ann", "wrong-password")
            page.wait_for_selector("#login-form")
        note = page.inner_text("#login-error")
        assert "locked out from your address for 15 minutes" in note
        submit_login(page, "ann")  # the right password, while locked
        page.wait_for_selector("#login-error")
        assert "locked out" in page.inner_text("#login-error")
        assert page_width(page) <= 1366
        page.screenshot(path=shots / "login-locked-out-1366.png", full_page=True)
    finally:
        context.close()


def test_a_team_lead_sets_up_and_signs_in_with_a_totp_code(browser, live_server, office, shots):
    for width, height in SIZES:
        for kind in (TOTPDevice, StaticDevice):  # start again without a second factor
            kind.objects.filter(user=office["lead"]).delete()
        context, page = open_login(browser, live_server, width, height)
        try:
            submit_login(page, "lead")
            page.wait_for_selector("#site-name")
            page.click("text=Two-factor sign-in")
            page.wait_for_selector("#totp-qr svg")
            assert page_width(page) <= width
            page.screenshot(path=shots / f"two-factor-setup-{width}.png", full_page=True)
            device = TOTPDevice.objects.get(user=office["lead"])
            page.fill("#id_code", f"{totp(device.bin_key):06d}")
            page.click("input[value='Turn on']")
            page.wait_for_selector("#recovery-codes")
            assert len(page.inner_text("#recovery-codes").split()) == 10
            page.screenshot(path=shots / f"two-factor-on-{width}.png", full_page=True)
            page.click("#logout-form button")
            page.goto(f"{live_server.url}/admin/login/")

            submit_login(page, "lead")  # no code: asked for one
            page.wait_for_selector("#login-error")
            assert "code" in page.inner_text("#login-error")
            device.refresh_from_db()
            submit_login(page, "lead", code=f"{totp(device.bin_key, t0=-30):06d}")
            page.wait_for_selector("#site-name")
            assert page.url.rstrip("/").endswith("/admin")
            assert page_width(page) <= width
            page.screenshot(path=shots / f"signed-in-with-code-{width}.png", full_page=True)
        finally:
            context.close()

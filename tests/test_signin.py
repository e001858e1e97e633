"""Signing in to the admin: password guessing is locked out, a second factor is asked for."""

import logging

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from crm.visibility import MANAGERS, TEAM_LEADS
from postbacks.team import setup_groups

PASSWORD = "right-password-1"
LOGIN = "/admin/login/"


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "b@example.com", PASSWORD)


@pytest.fixture
def lead(db, django_user_model):
    setup_groups(Group, Permission)
    user = django_user_model.objects.create_user("lead", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=TEAM_LEADS))
    return user


def sign_in(client, username, password=PASSWORD, code="", addr="127.0.0.1"):
    data = {"username": username, "password": password, "otp_token": code, "next": "/admin/"}
    return client.post(LOGIN, data, REMOTE_ADDR=addr)


def signed_in(client):
    return client.get("/admin/").status_code == 200


# Lockout


def test_five_wrong_passwords_lock_the_username_out_from_that_address(client, boss, caplog):
    for _ in range(4):
        answer = sign_in(client, "boss", "wrong")
        assert answer.status_code == 200 and "correct username and password" in answer.text
    with caplog.at_level(logging.WARNING, logger="axes"):
        fifth = sign_in(client, "boss", "wrong")
    assert fifth.status_code == 429 and "locked out from your address" in fifth.text
    assert any("Locking out" in r.getMessage() for r in caplog.records)
    # The right password does not get in while the lock lasts, and the page says why.
    right = sign_in(client, "boss")
    assert right.status_code == 429
    assert "locked out from your address for 15 minutes" in right.text
    assert not signed_in(client)


def test_a_lockout_holds_one_username_from_one_address(client, boss, django_user_model):
    django_user_model.objects.create_superuser("other", "o@example.com", PASSWORD)
    for _ in range(5):
        sign_in(client, "boss", "wrong")
    assert sign_in(client, "other").status_code == 302  # another username, same address
    client.logout()
    assert sign_in(client, "boss", addr="203.0.113.9").status_code == 302  # another address


def test_a_superuser_sees_and_lifts_a_lockout_in_the_admin(client, boss, django_user_model):
    for _ in range(5):
        sign_in(client, "boss", "wrong", addr="198.51.100.7")
    attempt = AccessAttempt.objects.get(username="boss")
    assert attempt.failures_since_start == 5 and attempt.ip_address == "198.51.100.7"
    client.force_login(boss)
    listed = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert listed.status_code == 200 and "198.51.100.7" in listed.text
    delete = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    client.logout()
    assert sign_in(client, "boss", addr="198.51.100.7").status_code == 302


def test_a_locked_out_address_still_sends_clicks_and_postbacks(client, boss, spot):
    spot.target_url = "https://land.example/"
    spot.save()
    for _ in range(5):
        sign_in(client, "boss", "wrong")
    assert client.get("/go/casino-bot").status_code == 302
    url = f"/api/postbacks/{spot.postback_token}/tracker-postback?clickid=nobody&goal=reg"
    assert client.get(url).status_code == 202  # kept as unmatched, as from anywhere


# Second factor


def set_up_factor(client, user):
    """What a user does on the two-factor page: scan, type the app's code."""
    client.force_login(user)
    page = client.get(reverse("admin:two_factor"))
    assert page.status_code == 200 and "<svg" in page.text
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert page.context["secret"].replace(" ", "") in page.text.replace(" ", "")
    done = client.post(reverse("admin:two_factor"), {"do": "confirm", "code": totp(device.bin_key)})
    assert done.status_code == 200 and len(done.context["shown_codes"]) == 10
    client.logout()
    device.refresh_from_db()
    assert device.confirmed
    return device, done.context["shown_codes"]


def next_code(device):
    # A code is accepted once: the next one is the app's next 30-second step.
    return totp(device.bin_key, t0=-30)


def test_a_team_lead_signs_in_with_a_totp_code(client, lead):
    device, _ = set_up_factor(client, lead)
    assert LogEntry.objects.filter(object_id=str(lead.pk), user=lead).exists()
    without = sign_in(client, "lead")
    assert without.status_code == 200 and "Enter the current code" in without.text
    wrong = sign_in(client, "lead", code="000000")
    assert "wrong or expired" in wrong.text and not signed_in(client)
    device.refresh_from_db()
    device.throttle_reset()  # a wrong code makes the device wait a second before the next
    assert sign_in(client, "lead", code=next_code(device)).status_code == 302
    assert signed_in(client)
    assert client.get(reverse("admin:two_factor")).context["verified"]


def test_a_recovery_code_signs_in_once(client, lead):
    _, codes = set_up_factor(client, lead)
    assert sign_in(client, "lead", code=codes[0]).status_code == 302
    client.logout()
    assert sign_in(client, "lead", code=codes[0]).status_code == 200
    assert StaticToken.objects.filter(device__user=lead).count() == 9


def test_wrong_codes_count_towards_the_lockout(client, lead):
    set_up_factor(client, lead)
    for _ in range(5):
        sign_in(client, "lead", code="123456")
    assert AccessAttempt.objects.get(username="lead").failures_since_start == 5
    assert sign_in(client, "lead", code="123456").status_code == 429


def test_required_second_factor_sends_a_team_lead_to_set_it_up(client, lead, settings, db):
    settings.TWO_FACTOR_REQUIRED = True
    assert sign_in(client, "lead").status_code == 302
    # Every page leads to the set-up page first; signing out stays open.
    answer = client.get(reverse("admin:crm_client_changelist"))
    assert answer.status_code == 302 and answer.url == reverse("admin:two_factor")
    assert client.get(reverse("admin:two_factor")).status_code == 200
    device = TOTPDevice.objects.get(user=lead)
    client.post(reverse("admin:two_factor"), {"do": "confirm", "code": totp(device.bin_key)})
    assert client.get(reverse("admin:crm_client_changelist")).status_code == 200
    # And it cannot be turned off.
    device.refresh_from_db()
    client.post(reverse("admin:two_factor"), {"do": "off", "code": next_code(device)})
    assert TOTPDevice.objects.filter(user=lead, confirmed=True).exists()


def test_required_second_factor_leaves_managers_free(client, settings, db, django_user_model):
    setup_groups(Group, Permission)
    settings.TWO_FACTOR_REQUIRED = True
    ann = django_user_model.objects.create_user("ann", password=PASSWORD, is_staff=True)
    ann.groups.add(Group.objects.get(name=MANAGERS))
    assert sign_in(client, "ann").status_code == 302
    assert client.get(reverse("admin:crm_client_changelist")).status_code == 200


def test_a_user_turns_the_second_factor_off_with_a_code(client, lead):
    device, _ = set_up_factor(client, lead)
    client.force_login(lead)
    wrong = client.post(reverse("admin:two_factor"), {"do": "off", "code": "000000"})
    assert "nothing was changed" in wrong.text
    device.refresh_from_db()
    device.throttle_reset()
    client.post(reverse("admin:two_factor"), {"do": "off", "code": next_code(device)})
    assert not TOTPDevice.objects.filter(user=lead).exists()
    client.logout()
    assert sign_in(client, "lead").status_code == 302

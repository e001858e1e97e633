"""Signing in to the admin: password guessing locked out, a second factor.

The admin holds pixel and ad-account tokens, so one password is not enough
to guard it:

1. Lockout is django-axes (settings: LOGIN_FAILURE_LIMIT failures of a
   username from one address lock it for LOGIN_LOCKOUT_MINUTES). Its backend
   refuses a locked-out sign-in before the password is checked, logs each
   lockout, and keeps the attempts in the admin, where a superuser lifts one
   by deleting it. The login form below only says so in words.
2. The second factor is TOTP from django-otp, with recovery codes (its static
   device). Whoever has one confirmed gives a code on the admin's own login
   page; a wrong code counts as a failed sign-in for the lockout. With
   TWO_FACTOR_REQUIRED, superusers and team leads without a verified second
   factor are sent to set one up before any other page.

Why a thin layer over django-otp rather than django-two-factor-auth: that
package replaces the admin's login with its own multi-step wizard and brings
phone and form-wizard dependencies, and it requires a second factor of
everyone or no one; here one field on the admin's login page, one page to
set a factor up and a per-role rule are all of it.
"""

import io
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe
from django_otp import devices_for_user
from django_otp import login as verify_session
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tracker.admin_utils import log_change

RECOVERY_CODES = 10


def lockout_minutes():
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def needs_second_factor(user):
    """Superusers and team leads (who see every client) must have one, when required."""
    return settings.TWO_FACTOR_REQUIRED and (
        user.is_superuser or user.has_perm("crm.view_all_clients")
    )


def owes_second_factor(request):
    user = request.user
    return (
        user.is_authenticated
        and user.is_staff
        and needs_second_factor(user)
        and not user.is_verified()
    )


def check_code(user, code):
    """The user's confirmed device that accepts `code` (an app's code or a
    recovery code, used up), or None. Each device throttles wrong guesses."""
    code = code.replace(" ", "").lower()
    for device in devices_for_user(user):
        if device.verify_token(code):
            return device
    return None


class SignInForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="If you set up a second factor: the code from your app, or a recovery code.",
    )

    def confirm_login_allowed(self, user):
        # Django says "wrong password" here too; a team member added to a group
        # but not marked staff would never learn why they cannot get in.
        if user.is_active and not user.is_staff:
            raise ValidationError(
                "This account may not use the admin yet: it has no staff status. "
                "Ask a superuser to tick “Staff status” on your user.",
                code="not_staff",
            )
        super().confirm_login_allowed(user)

    def clean(self):
        try:
            data = super().clean()
        except ValidationError:
            # django-axes refused it, or this failure locked the username out.
            if getattr(self.request, "axes_locked_out", False):
                raise ValidationError(
                    "Too many failed sign-ins: this username is locked out from your "
                    f"address for {lockout_minutes()} minutes. A superuser can lift it "
                    "under Axes › Access attempts.",
                    code="locked_out",
                ) from None
            raise
        self.check_second_factor(self.user_cache)
        return data

    def check_second_factor(self, user):
        if not any(devices_for_user(user)):
            return
        code = self.cleaned_data.get("otp_token", "")
        device = check_code(user, code) if code else None
        if device is None:
            # Counted like a wrong password, so codes cannot be guessed either.
            user_login_failed.send(
                sender=__name__, credentials={"username": user.get_username()}, request=self.request
            )
            raise ValidationError(
                "Enter the current code from your authenticator app, or a recovery code."
                if not code
                else "That two-factor code is wrong or expired.",
                code="otp",
            )
        # django-otp marks the session verified when the login completes.
        user.otp_device = device


def locked_out(request, response, credentials):
    """django-axes' answer to a locked-out sign-in: the login page itself,
    whose form says why, with 429."""
    response.status_code = settings.AXES_HTTP_RESPONSE_CODE
    return response


def two_factor_view(site, request):
    """The page where a user sets up, checks or turns off their second factor."""
    user = request.user
    app = TOTPDevice.objects.filter(user=user).first()
    code = request.POST.get("code", "")
    done = request.POST.get("do", "")
    shown_codes = []
    if request.method == "POST" and done == "confirm" and app and not app.confirmed:
        if app.verify_token(code.replace(" ", "")):
            with transaction.atomic():
                app.confirmed = True
                app.save(update_fields=["confirmed"])
                shown_codes = new_recovery_codes(user)
            verify_session(request, app)
            log_change(request, [user], "Set up a second factor (authenticator app).")
            messages.success(request, "Two-factor sign-in is on. Keep the recovery codes.")
        else:
            messages.error(request, "That code is wrong or expired: try the current one.")
    elif request.method == "POST" and done and app and app.confirmed:
        device = check_code(user, code)
        if device is None:
            messages.error(request, "That code is wrong or expired: nothing was changed.")
        elif done == "verify":
            verify_session(request, device)
            messages.success(request, "Signed in with your second factor.")
        elif done == "recovery":
            shown_codes = new_recovery_codes(user)
            log_change(request, [user], "Made new recovery codes.")
        elif done == "off" and needs_second_factor(user):
            messages.error(request, "Your role needs a second factor: it stays on.")
        elif done == "off":
            for kind in (TOTPDevice, StaticDevice):
                kind.objects.filter(user=user).delete()
            log_change(request, [user], "Turned the second factor off.")
            messages.success(request, "Two-factor sign-in is off.")
            return redirect("admin:two_factor")
    if app is None:
        app = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    recovery = StaticToken.objects.filter(device__user=user).count()
    context = {
        **site.each_context(request),
        "title": "Two-factor sign-in",
        "app": app,
        "qr": qr_svg(app.config_url) if not app.confirmed else "",
        "secret": " ".join(chunks(b32encode(app.bin_key).decode(), 4)),
        "recovery_left": recovery,
        "shown_codes": shown_codes,
        "required": needs_second_factor(user),
        "verified": user.is_verified(),
    }
    return TemplateResponse(request, "admin/two_factor.html", context)


def new_recovery_codes(user):
    """Replace the user's recovery codes with new ones; returns them, shown once."""
    device, _ = StaticDevice.objects.get_or_create(user=user, defaults={"name": "Recovery codes"})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def qr_svg(data):
    """The QR code as inline SVG: one path, in an <svg> that HTML parses as SVG."""
    out = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage).save(out)
    svg = out.getvalue().decode()
    # Made by qrcode from our own otpauth URL: no user text reaches it unescaped.
    return mark_safe(svg[svg.index("<svg") :])


def chunks(text, size):
    return [text[i : i + size] for i in range(0, len(text), size)]

"""Checks of an outgoing postback's configuration, run when it is saved."""

from django.conf import settings
from django.core.exceptions import ValidationError

from crm.macros import unknown_macros
from postbacks import render


def _macro_error(template):
    unknown = unknown_macros(template)
    if unknown:
        names = ", ".join(f"{{{n}}}" for n in unknown)
        return f"Unknown macro {names}. See the list of macros in the help."
    return None


def clean_outgoing(postback):
    errors = {}
    for field in ("url", "body", "headers"):
        message = _macro_error(getattr(postback, field))
        if message:
            errors[field] = message
    try:
        render.parse_headers(postback.headers)
    except ValueError as e:
        errors.setdefault("headers", str(e))
    url, _, _, _ = render.split_inline(postback.url or "")
    if url and not url.lower().startswith(("http://", "https://", "{")):
        errors.setdefault("url", "The URL must start with http:// or https://.")
    for field in ("success_status", "error_status"):
        try:
            render.parse_statuses(getattr(postback, field))
        except ValueError as e:
            errors[field] = str(e)
    longest = settings.POSTBACKS_MAX_TIMEOUT
    if postback.timeout is not None and not 0.5 <= postback.timeout <= longest:
        errors["timeout"] = f"The timeout must be between 0.5 and {longest:g} seconds."
    if postback.spot_id:
        limit = settings.POSTBACKS_MAX_PER_SPOT
        others = type(postback).objects.filter(spot_id=postback.spot_id).exclude(pk=postback.pk)
        if others.count() >= limit:
            errors["__all__"] = f"A spot may have at most {limit} outgoing postbacks."
    if errors:
        raise ValidationError(errors)

"""Checks of an outgoing postback's configuration, run when it is saved.

A setting that can never send what it means is refused here, with the field
it is about, rather than failing at every delivery."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError

from crm.macros import render as render_macros
from crm.macros import unknown_macros
from postbacks import render

# What every macro stands for when a JSON template is tried: a number, so a
# macro left unquoted for a number ({"sum": {sum}}) parses as it will when sent.
SAMPLE_VALUE = "1"


class _Samples(dict):
    def __contains__(self, name):
        return True

    def __getitem__(self, name):
        return SAMPLE_VALUE


def _macro_error(template):
    unknown = unknown_macros(template)
    if unknown:
        names = ", ".join(f"{{{n}}}" for n in unknown)
        return f"Unknown macro {names}. See the list of macros in the help."
    return None


def json_error(template):
    """Why `template`, its macros filled with sample values, is not JSON, or None."""
    text = render_macros(template, _Samples(), render.json_escape)
    try:
        json.loads(text)
    except ValueError as e:
        return f"Not valid JSON once its macros are filled in ({e}): {text[:200]}"
    return None


def clean_request(postback, errors):
    """The method and the body: no body a GET would drop, JSON that parses."""
    _, inline_method, inline_format, inline_body = render.split_inline(postback.url or "")
    if inline_method is not None:
        if inline_format == "json" and "url" not in errors:
            message = json_error(inline_body)
            if message:
                errors["url"] = f"The body after |JSON| is {message[0].lower()}{message[1:]}"
        return
    has_body = bool((postback.body or "").strip())
    if postback.method == "GET" and has_body:
        errors.setdefault("body", "A GET request has no body: choose POST, or clear the body.")
    elif has_body and postback.body_format == "none":
        errors.setdefault("body_format", "Choose the body's format (form, JSON or XML).")
    elif postback.body_format == "json" and "body" not in errors:
        message = json_error(postback.body)
        if message:
            errors["body"] = message


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
    clean_request(postback, errors)
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

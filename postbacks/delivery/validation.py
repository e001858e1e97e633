"""Checks of an outgoing postback's configuration, run when it is saved.

A setting that can never send what it means is refused here, with the field
it is about, rather than failing at every delivery."""

import json
import re

from django.conf import settings
from django.core.exceptions import ValidationError

from crm.macros import is_known, macro_error
from crm.macros import render as render_macros
from postbacks.delivery import render
from tracker.status_words import parse_status_words

# What every macro stands for when a JSON template is tried: a number, so a
# macro left unquoted for a number ({"sum": {sum}}) parses as it will when sent.
SAMPLE_VALUE = "1"


class _Samples(dict):
    def __contains__(self, name):
        return True

    def __getitem__(self, name):
        return SAMPLE_VALUE


# Registration links' {{tracker.clickid}}: never a macro of an outgoing postback.
DOUBLE_BRACES = re.compile(r"\{\{[^{}]*\}\}")


def _brace_error(template):
    """Double braces or a brace left open or unopened, as a message, or None."""
    double = DOUBLE_BRACES.search(template or "")
    if double:
        return (
            f"{double.group(0)} has double braces, which only registration links use; "
            "outgoing postbacks take single braces, e.g. {click_id}."
        )
    return None


def unbalanced_brace(text):
    """The place of a brace left open or never opened in `text`, as a message, or None."""
    depth, opened = 0, 0
    for at, char in enumerate(text):
        if char == "{":
            depth, opened = depth + 1, (at if depth == 0 else opened)
        elif char == "}":
            depth -= 1
            if depth < 0:
                near = text[max(0, at - 20) : at + 1]
                return f"A closing brace has no opening one near {near!r}."
    if depth:
        name = re.match(r"\{[^{}&?/#=\s]{0,40}", text[opened:]).group(0)
        return (
            f"The brace of {name!r} is not closed: a macro is written {{name}}, e.g. {{click_id}}."
        )
    return None


def url_error(url):
    """What makes the request line unusable: a brace left open, a host with a space."""
    message = unbalanced_brace(url)
    if message:
        return message
    scheme, sep, after = url.partition("://")
    host = re.split(r"[/?#]", after, maxsplit=1)[0] if sep else ""
    if sep and not host.strip():
        return "The URL has no host after the scheme."
    if re.search(r"\s", host):
        return f"The host {host!r} has a space in it: a host name never has one."
    return None


def status_words_error(postback):
    try:
        parse_status_words(postback.status_words)
    except ValueError as e:
        return str(e)
    return None


def required_macros_error(postback):
    names = render.parse_required(postback.required_macros)
    unknown = [n for n in names if not is_known(n)]
    if unknown:
        return (
            f"Unknown macro {', '.join(unknown)}: name macros as in the URL, without "
            "braces, comma separated, e.g. 'cl_id'."
        )
    return None


def _macro_error(template):
    return macro_error(template, "See the list of macros in the help.")


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
        message = _brace_error(getattr(postback, field)) or _macro_error(getattr(postback, field))
        if message:
            errors[field] = message
    try:
        render.parse_headers(postback.headers)
    except ValueError as e:
        errors.setdefault("headers", str(e))
    url, _, _, _ = render.split_inline(postback.url or "")
    if url and not url.lower().startswith(("http://", "https://", "{")):
        errors.setdefault("url", "The URL must start with http:// or https://.")
    if url and "url" not in errors:
        message = url_error(url)
        if message:
            errors["url"] = message
    for field, check in (
        ("status_words", status_words_error),
        ("required_macros", required_macros_error),
    ):
        message = check(postback)
        if message:
            errors[field] = message
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

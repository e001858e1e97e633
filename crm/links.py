"""Rendering of seed 003's double-brace macros for one client.

{{tracker.clickid}} is the client's click id and {{fields.X}} the value of
its custom field X (empty when not set). Values are percent-encoded, as they
land in a URL; one pass, so a value containing "{{...}}" stays as it is.
"""

from crm.macros import render, url_escape
from tracker.links import LINK_MACRO_RE, is_link_macro


def link_context(client, field_values=None):
    ctx = {"tracker.clickid": client.click_id}
    values = client.field_values() if field_values is None else field_values
    for key, value in values.items():
        ctx[f"fields.{key}"] = value
    return ctx


def render_link(template, ctx):
    return render(template, ctx, url_escape, LINK_MACRO_RE, is_link_macro)


def client_links(client):
    """[(link, url)] of the client's spot's registration links rendered for it."""
    ctx = link_context(client)
    return [
        (link, render_link(link.final_url, ctx))
        for link in client.spot.registration_links.select_related("partner")
    ]

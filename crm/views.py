"""Click intake: /go/<spot> for links, POST /api/clients for bots.

Both are public: every answer to bad input is a JSON 4xx with an error that
names the problem, never a 500 or an HTML page.
"""

import functools
import secrets

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from crm import spend, spots
from crm.clicks import (
    MAX_PARAMS,
    BadInput,
    client_from_click,
    parse_bot_client,
    read_bot_json,
    register_client,
)
from crm.http import TooBig, Unreadable, read_body
from crm.links import client_links, link_context, render_link
from crm.values import clean_text
from tracker import metrics
from tracker.models import Spot


def error(message, status):
    return JsonResponse({"ok": False, "error": message}, status=status)


def method_not_allowed(request, allowed):
    """405 in JSON, with the Allow header HTTP asks for."""
    response = error(
        f"Use {' or '.join(allowed)}, not {clean_text(request.method)[:20]}.", status=405
    )
    response["Allow"] = ", ".join(allowed)
    return response


def allow(*methods):
    """Django's require_http_methods, answered in JSON like every other error here."""

    def decorator(view):
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            if request.method not in methods:
                return method_not_allowed(request, methods)
            return view(request, *args, **kwargs)

        return checked

    return decorator


@csrf_exempt  # a GET-only link: other methods get the JSON 405, not a CSRF page
@allow("GET")
def go(request, slug):
    spot = spots.by_slug(slug)  # kept per process: the click's one statement is its insert
    if spot is None:
        return error(f"No spot {slug!r}.", 404)
    if not spot.target_url:
        # Refused before a client is made: a lead must not be counted for a dead link.
        return error(f"The spot {spot.name!r} has no target URL; set it in the admin.", 409)
    try:
        pairs = [(k, request.GET[k]) for k in request.GET]
    except TooManyFieldsSent:
        return error(f"Too many parameters (more than {MAX_PARAMS}).", 400)
    try:
        client = client_from_click(spot, pairs, request)
    except BadInput as e:
        return error(str(e), 400)
    metrics.click(spot)
    target = render_link(spot.target_url, link_context(client, field_values={}))
    return HttpResponseRedirect(target)


def _api_key(request):
    key = request.headers.get("X-Api-Key", "")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:]
    return clean_text(key.strip())


@csrf_exempt
@allow("POST")
def api_clients(request):
    key = _api_key(request)
    if not key:
        return error("Send the spot's API key in the X-Api-Key header.", 401)
    spot = Spot.objects.filter(api_key=key).first()
    if spot is None or not secrets.compare_digest(spot.api_key, key):
        return error("Unknown API key.", 403)
    try:
        user_id, fields = parse_bot_client(read_bot_json(read_body(request)))
    except TooBig as e:
        return error(str(e), 413)
    except Unreadable as e:
        return error(f"The body could not be read: {e}", 400)
    except BadInput as e:
        return error(str(e), 400)
    cost = spend.click_cost(spot, {str(k): str(v) for k, v in fields["params"].items()})
    client, created = register_client(spot, user_id, fields, cost)
    if created:  # a bot's repeated send is not a second click
        metrics.click(spot)
    return JsonResponse(
        {
            "ok": True,
            "created": created,
            "id": client.pk,
            "click_id": client.click_id,
            "links": {link.name: url for link, url in client_links(client)},
        },
        status=201 if created else 200,
    )

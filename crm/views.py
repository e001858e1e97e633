"""Click intake: /go/<spot> for links, POST /api/clients for bots."""

import json
import secrets

from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from crm.clicks import BadInput, client_from_click, parse_bot_client
from crm.links import client_links, link_context, render_link
from crm.models import Client
from tracker.models import Spot


def error(message, status):
    return JsonResponse({"ok": False, "error": message}, status=status)


@require_GET
def go(request, slug):
    spot = Spot.objects.filter(slug=slug).first()
    if spot is None:
        return error(f"No spot {slug!r}.", 404)
    if not spot.target_url:
        # Refused before a client is made: a lead must not be counted for a dead link.
        return error(f"The spot {spot.name!r} has no target URL; set it in the admin.", 409)
    pairs = [(k, request.GET[k]) for k in request.GET]
    try:
        client = client_from_click(spot, pairs)
    except BadInput as e:
        return error(str(e), 400)
    target = render_link(spot.target_url, link_context(client, field_values={}))
    return HttpResponseRedirect(target)


def _api_key(request):
    key = request.headers.get("X-Api-Key", "")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:]
    return key.strip()


@csrf_exempt
@require_POST
def api_clients(request):
    key = _api_key(request)
    if not key:
        return error("Send the spot's API key in the X-Api-Key header.", 401)
    spot = Spot.objects.filter(api_key=key).first()
    if spot is None or not secrets.compare_digest(spot.api_key, key):
        return error("Unknown API key.", 403)
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return error("The body is not valid JSON.", 400)
    try:
        user_id, fields = parse_bot_client(data)
    except BadInput as e:
        return error(str(e), 400)
    with transaction.atomic():
        # The spot's row lock makes get-or-create safe against a bot's double send.
        Spot.objects.select_for_update().filter(pk=spot.pk).exists()
        client = Client.objects.filter(spot=spot, user_id=user_id).order_by("pk").first()
        created = client is None
        if created:
            client = Client.objects.create(spot=spot, user_id=user_id, **fields)
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

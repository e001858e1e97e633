"""GET /api/report: the statistics report as JSON, the lines of the page's CSV.

Authenticated like the trackers' report APIs, by one of:
- a spot's API key (X-Api-Key, or Authorization: Bearer): that spot's figures,
  every manager's, every column;
- a user's report token (Authorization: Bearer, made by "New report token" on
  the statistics page; only its SHA-256 is stored): what the page shows that
  user, a manager only their own clients' figures, in the columns they chose.

It takes the page's parameters (date_from, date_to or preset, basis, group,
then, spot, sort, the drill-down filters) and `columns` (ids, comma separated).
Counts are JSON numbers; money and percentages are strings of plain decimals
("1234.5"), exact to the 8 places amounts keep; a figure with no value is null.
Every error is JSON 4xx with a message.
"""

import hashlib
import secrets

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from crm import report
from crm.admin_stats import asked_columns, read_query
from crm.models import ReportSettings
from crm.values import clean_text
from crm.views import allow, error
from crm.visibility import own_figures
from tracker.models import Spot

# The page's right: whoever may open the statistics page may read its JSON.
VIEW_STATISTICS = "crm.view_dailystat"


def credential(request):
    key = request.headers.get("X-Api-Key", "")
    auth = request.headers.get("Authorization", "")
    if not key and auth[:7].lower() == "bearer ":
        key = auth[7:]
    return clean_text(key.strip())[:200]


def spot_of(key):
    spot = Spot.objects.filter(api_key=key).first()
    return spot if spot is not None and secrets.compare_digest(spot.api_key, key) else None


def settings_of(token):
    digest = hashlib.sha256(token.encode()).hexdigest()
    found = ReportSettings.objects.filter(token_hash=digest).select_related("user").first()
    return found if found is not None and secrets.compare_digest(found.token_hash, digest) else None


def may_read(user):
    return user.is_active and user.is_staff and user.has_perm(VIEW_STATISTICS)


def form_errors(form):
    messages = []
    for name, errors in form.errors.items():
        where = "" if name == "__all__" else f"{name}: "
        messages += [f"{where}{e}" for e in errors]
    return " ".join(messages)


@csrf_exempt  # read-only; a key or token, never a cookie, says who asks
@allow("GET")
def report_api(request):
    key = credential(request)
    if not key:
        return error(
            "Send a spot's API key (X-Api-Key) or your report token "
            "(Authorization: Bearer <token>, from the statistics page).",
            401,
        )
    spot = spot_of(key)
    if spot is not None:
        manager, columns = None, None
        asked = request.GET.get("spot")
        if asked not in (None, "", str(spot.pk)):
            return error(f"This key reads only the spot {spot.name!r} (id {spot.pk}).", 403)
    else:
        found = settings_of(key)
        if found is None:
            return error("Unknown API key or report token.", 403)
        if not may_read(found.user):
            return error("This token's user may not read the statistics.", 403)
        manager, columns = own_figures(found.user), found.columns
    preset = request.GET.get("preset")
    if preset is not None and preset not in dict(report.PRESETS):
        known = ", ".join(name for name, _ in report.PRESETS)
        return error(f"Unknown preset {clean_text(preset)[:40]!r}; known: {known}.", 400)
    form, query = read_query(request.GET, manager, columns)
    if not form.is_valid():
        return error(form_errors(form), 400)
    if spot is not None:
        query.spot = spot
    rep = report.build(query)
    known = {c.id for c in rep.all_columns}
    unknown = [c for c in asked_columns(request.GET) if c not in known]
    if unknown:
        return error(
            f"Unknown column {clean_text(unknown[0])[:80]!r}; known: {', '.join(sorted(known))}.",
            400,
        )
    return JsonResponse(as_json(rep))


def as_json(rep):
    """The CSV's lines as objects keyed by column id (dimensions by their name)."""
    header, *lines, total = report.plain_lines(rep)
    ids = [*rep.query.group, *(c.id for c in rep.columns)]
    counts = {c.id for c in rep.columns if c.id == "leads" or c.id.startswith("n:")}

    def value(column, text):
        if column in rep.query.group:
            return text
        if text == "":
            return None
        return int(text) if column in counts else text

    def obj(cells):
        return {column: value(column, text) for column, text in zip(ids, cells, strict=True)}

    return {
        "ok": True,
        "currency": settings.REPORTING_CURRENCY,
        "date_from": rep.query.date_from.isoformat(),
        "date_to": rep.query.date_to.isoformat(),
        "basis": rep.query.basis,
        "group": rep.query.group,
        "columns": [{"id": i, "title": t} for i, t in zip(ids, header, strict=True)],
        "rows": [obj(cells) for cells in lines],
        "total": obj(total),
    }

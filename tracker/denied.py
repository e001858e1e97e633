"""A page a user may not open answers 403 inside the admin, saying why.

Django's bare "403 Forbidden" leaves a manager on a blank page; this one keeps
the admin's header and sidebar, names the page and the role it belongs to,
and links back home. The status stays 403.
"""

from django.template.response import TemplateResponse


def denied_page(site, request, reason=""):
    context = {
        **site.each_context(request),
        "title": "You may not open this page",
        "reason": reason
        or "Your role does not include it. Ask a team lead or a superuser if you need it.",
    }
    return TemplateResponse(request, "admin/denied.html", context, status=403)

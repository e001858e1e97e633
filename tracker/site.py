"""The admin site: every admin page passes two guards here.

1. Whoever owes a second factor (tracker/signin.py) sees only the page that
   sets it up, and can sign out.
2. An action posted by someone it is not offered to (an action's
   `permissions`, or one a model admin does not have) is refused with a
   message, nothing changed. Django alone would re-show the list silently
   when the user has no action at all.
3. A page the user may not open answers 403 inside the admin, saying why
   (tracker/denied.py), not Django's bare page.
"""

from functools import update_wrapper

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse

from tracker.denied import denied_page
from tracker.signin import SignInForm, owes_second_factor, two_factor_view

# Pages a user who still owes a second factor may open: to set it up, or leave.
OPEN_WITHOUT_FACTOR = {"two_factor", "logout"}

# The menu (the home page's list and the sidebar) in the order a team uses it:
# (section, [model labels]); a model in none of them goes to the last section.
SECTIONS = [
    (
        "Daily work",
        [
            "tracker.spot",
            "crm.client",
            "crm.dailystat",
            "postbacks.incomingpostback",
            "postbacks.delivery",
            "postbacks.outgoingpostback",
        ],
    ),
    (
        "Set-up",
        [
            "tracker.goal",
            "tracker.partner",
            "tracker.partnerpreset",
            "tracker.registrationlink",
            "crm.customfield",
            "crm.exchangerate",
            "crm.spend",
            "crm.spendmapping",
            "tracker.adaccount",
            "crm.conversion",
            "crm.message",
        ],
    ),
    ("Operations", ["postbacks.status", "django_rq.dashboard"]),
    ("Team and sign-in", []),  # users, groups, lockouts, second factors: the rest
]
# Names of other packages' pages, as the people who use them say it.
NAMES = {
    "axes.accessattempt": "Sign-in lockouts",
    "axes.accessfailurelog": "Failed sign-ins",
    "axes.accesslog": "Sign-in log",
    "otp_totp.totpdevice": "Authenticator apps",
    "otp_static.staticdevice": "Recovery codes",
    "django_rq.dashboard": "Background queues",
}


def menu(app_list):
    """Django's per-app list regrouped into SECTIONS, each model where a team
    looks for it; an empty section is left out."""
    models = {}
    for app in app_list:
        for model in app["models"]:
            label = f"{app['app_label']}.{model['object_name'].lower()}"
            models[label] = {**model, "name": NAMES.get(label, model["name"])}
    if not settings.REDIS_URL:  # the run mode without queues shows none
        models.pop("django_rq.dashboard", None)
    placed = {label for _, labels in SECTIONS for label in labels}
    sections = []
    for name, labels in SECTIONS:
        chosen = [models[label] for label in labels if label in models]
        if not labels:  # the last section: what no other one named, in Django's order
            chosen = [m for label, m in models.items() if label not in placed]
        if chosen:
            slug = name.lower().replace(" ", "-")
            sections.append({"name": name, "app_label": slug, "section": True, "models": chosen})
    return sections


class AdminSite(admin.AdminSite):
    login_form = SignInForm
    index_template = "admin/index.html"
    # The home page's figures and alerts: a function(request) -> context, set
    # by postbacks.apps (tracker may not import the apps that hold the data).
    dashboard = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pages = {}  # add_page's: url name -> (title, path, view, may_open)

    def add_page(self, name, title, route, view, may_open):
        """A page of another app that is no model's list (postbacks' Status), in
        the menu as "app_label.model" `name` says, for whom may_open(request) is true."""
        self.pages[name] = (title, route, view, may_open)

    def page_entries(self, request):
        """The added pages the user may open, as entries of Django's app list."""
        apps = {}
        for name, (title, _, _, may_open) in self.pages.items():
            if may_open(request):
                app_label, model = name.split(".")
                entry = {
                    "name": title,
                    "object_name": model,
                    "admin_url": reverse(f"{self.name}:{app_label}_{model}"),
                    "add_url": None,
                    "view_only": True,
                    "page": name,
                }
                apps.setdefault(app_label, []).append(entry)
        return [{"app_label": label, "models": models} for label, models in apps.items()]

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        # One app's own page (/admin/crm/) keeps Django's list of that app.
        return apps if app_label else menu(apps + self.page_entries(request))

    def index(self, request, extra_context=None):
        extra = {"title": "Dashboard", **(extra_context or {})}
        if self.dashboard is not None:
            extra.update(self.dashboard(request))
        return super().index(request, extra)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            name = request.resolver_match.url_name
            if owes_second_factor(request) and name not in OPEN_WITHOUT_FACTOR:
                messages.warning(request, "Your role needs a second factor: set it up first.")
                return redirect("admin:two_factor")
            refused = self.refused_action(request, name)
            if refused:
                messages.error(request, f"You may not run “{refused}”: nothing was changed.")
                return redirect(request.get_full_path())
            try:
                return inner(request, *args, **kwargs)
            except PermissionDenied as denied:
                return denied_page(self, request, str(denied))

        return update_wrapper(guarded, view)

    def refused_action(self, request, url_name):
        """The action a list's POST asks for that the user is not offered, or ''."""
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if not action or not url_name.endswith("_changelist"):
            return ""
        for model, model_admin in self._registry.items():
            if url_name == f"{model._meta.app_label}_{model._meta.model_name}_changelist":
                return "" if action in model_admin.get_actions(request) else action
        return ""

    def get_urls(self):
        page = self.admin_view(lambda request: two_factor_view(self, request))
        added = [
            path(route, self.admin_view(view), name=name.replace(".", "_"))
            for name, (_, route, view, _) in self.pages.items()
        ]
        return [path("two-factor/", page, name="two_factor"), *added, *super().get_urls()]

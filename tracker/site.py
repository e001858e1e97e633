"""The admin site: every admin page passes two guards here.

1. Whoever owes a second factor (tracker/signin.py) sees only the page that
   sets it up, and can sign out.
2. An action posted by someone it is not offered to (an action's
   `permissions`, or one a model admin does not have) is refused with a
   message, nothing changed. Django alone would re-show the list silently
   when the user has no action at all.
"""

from functools import update_wrapper

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path

from tracker.signin import SignInForm, owes_second_factor, two_factor_view

# Pages a user who still owes a second factor may open: to set it up, or leave.
OPEN_WITHOUT_FACTOR = {"two_factor", "logout"}


class AdminSite(admin.AdminSite):
    login_form = SignInForm

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
            return inner(request, *args, **kwargs)

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
        return [path("two-factor/", page, name="two_factor"), *super().get_urls()]

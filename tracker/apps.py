from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import m2m_changed


def managers_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """Keep Spot.has_managers in step with Spot.managers, from either side."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    from tracker.models import Spot

    if not reverse:
        Spot.refresh_has_managers([instance.pk])
    elif action == "post_clear":
        Spot.refresh_has_managers()  # a user left every spot: which ones is not told
    else:
        Spot.refresh_has_managers(pk_set)


class TrackerConfig(AppConfig):
    name = "tracker"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from tracker import checks  # noqa: F401  (registers the deploy checks)
        from tracker.models import Spot

        m2m_changed.connect(
            managers_changed, sender=Spot.managers.through, dispatch_uid="spot_managers"
        )


class AdminConfig(admin_apps.AdminConfig):
    """The admin, on the site of tracker/site.py (INSTALLED_APPS names it)."""

    default = False
    default_site = "tracker.site.AdminSite"

    def ready(self):
        super().ready()
        from tracker import admin_users  # noqa: F401  (the user page that warns)

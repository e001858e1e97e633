"""RQ's dashboard in the admin, for superusers, and only where RQ runs.

django-rq lets any staff user in, and its pages clear queues, delete and
requeue jobs; a manager is staff. The queues hold only wake-ups (the
database is the truth), but they are still nobody's but an operator's.
In the embedded mode there is no Redis and nothing to show.
"""

from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns


def is_operator(request):
    return request.user.is_active and request.user.is_superuser


class QueueDashboardAdmin(QueueAdmin):
    actions = None  # the dashboard has no rows to act on

    def has_module_permission(self, request):
        return is_operator(request)

    def has_view_permission(self, request, obj=None):
        return is_operator(request)

    def has_change_permission(self, request, obj=None):
        return is_operator(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_object(self, request, object_id, from_field=None):
        return None  # the dashboard has no rows (its model has no table)

    def changelist_view(self, request, extra_context=None):
        return self.operators_only(super().changelist_view)(request)

    def operators_only(self, view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not is_operator(request):
                raise PermissionDenied
            request.current_app = self.admin_site.name
            return view(request, *args, **kwargs)

        return guarded

    def get_urls(self):
        pages = get_admin_urlpatterns(
            name_prefix="django_rq_",
            view_wrapper=lambda view: self.admin_site.admin_view(self.operators_only(view)),
        )
        # The JSON and metrics views keep django-rq's own bearer-token check.
        api = get_api_urlpatterns(name_prefix="django_rq_")
        return api + pages + admin.ModelAdmin.get_urls(self)


if settings.REDIS_URL:
    admin.site.register(Dashboard, QueueDashboardAdmin)

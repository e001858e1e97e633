import os
import sys

from django.apps import AppConfig


def _serving():
    """True in a process that serves web requests (and is not runserver's reloader parent)."""
    argv = sys.argv
    main = sys.modules.get("__main__")
    # The gunicorn script, or `python -m gunicorn` (whose argv[0] is __main__.py).
    if "gunicorn" in os.path.basename(argv[0]) or "gunicorn" in (
        getattr(main, "__package__", None) or ""
    ):
        return True
    command = argv[1] if len(argv) > 1 else ""
    if command == "quickstart" and "--no-serve" not in argv:
        return True
    if command == "runserver":
        # With the autoreloader, only the child (RUN_MAIN=true) serves.
        return "--noreload" in argv or os.environ.get("RUN_MAIN") == "true"
    return False


class PostbacksConfig(AppConfig):
    name = "postbacks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from postbacks.presets import create_locked_outgoing
        from tracker.presets import preset_applied

        preset_applied.connect(create_locked_outgoing, dispatch_uid="preset_locked_outgoing")

        from postbacks.delivery import fanout
        from postbacks.incoming import replay

        fanout.connect()  # a new client is a lead event for the targets that pick it
        replay.connect()  # unmatched postbacks replay themselves when their client appears

        from postbacks import wake
        from postbacks.loops import periodic, queue

        wake.set_look(queue.look)  # writers of deliveries wake the loops through wake.py

        periodic.connect()  # a changed rate revalues, asked spend is pulled: in the background

        from django.contrib import admin

        from postbacks.admin import dashboard

        # The admin home's figures and alerts (tracker's site may not import them).
        admin.site.dashboard = dashboard.context

        from postbacks.admin import status
        from tracker import metrics

        # The Status page in the admin's menu, and the backlog gauges of /metrics.
        admin.site.add_page("postbacks.status", "Status", "status/", status.view, status.may_open)
        metrics.backlog_source = status.gauges

        from django.conf import settings

        from postbacks import checks  # noqa: F401  (registers the system checks)

        # With Redis the workers send (postbacks/loops/worker.py); without it, the web process.
        if not settings.REDIS_URL and _serving():
            # Embedded mode: this process sends the postbacks itself.
            from postbacks.loops import embedded

            embedded.start()

from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from postbacks.presets import create_locked_outgoing
        from tracker.presets import preset_applied

        preset_applied.connect(create_locked_outgoing, dispatch_uid="preset_locked_outgoing")

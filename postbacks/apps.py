from django.apps import AppConfig


class PostbacksConfig(AppConfig):
    name = "postbacks"
    default_auto_field = "django.db.models.BigAutoField"

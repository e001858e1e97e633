from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "CRM"

    def ready(self):
        # The statistics rollup follows every saved client and conversion.
        from crm import stats

        stats.connect()

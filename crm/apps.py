from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "CRM"

    def ready(self):
        # The statistics rollup follows every saved client and conversion.
        from crm import spots, stats

        stats.connect()
        spots.connect()  # a changed spot, goal or partner is read again by the intake

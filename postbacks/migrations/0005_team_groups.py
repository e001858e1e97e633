"""The Managers and Team leads groups, with their permissions, on every install."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from postbacks.team import setup_groups


def create_groups(apps, schema_editor):
    # Permissions are normally made after all migrations ran; this one needs them now.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    setup_groups(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("crm", "0003_client_permissions"),
        ("tracker", "0005_spot_managers"),
        ("postbacks", "0004_status_changes_and_leads"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]

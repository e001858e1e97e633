"""The Managers and Team leads groups, with their permissions, on every install."""

from django.db import migrations

from postbacks.team import migrate_groups

# As they were at this migration; later ones add to them.
MANAGERS = [
    "crm.view_client",
    "crm.change_client",
    "crm.view_conversion",
    "crm.view_message",
    "crm.add_message",
    "crm.view_customfieldvalue",
    "crm.add_customfieldvalue",
    "crm.change_customfieldvalue",
    "crm.view_dailystat",
    "postbacks.view_delivery",
    "postbacks.view_deliveryattempt",
]
TEAM_LEADS = [
    *MANAGERS,
    "crm.add_client",
    "crm.change_conversion",
    "crm.change_message",
    "crm.view_all_clients",
    "crm.assign_client",
    "postbacks.view_incomingpostback",
]


def create_groups(apps, schema_editor):
    migrate_groups(apps, {"Managers": MANAGERS, "Team leads": TEAM_LEADS})


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("crm", "0003_client_permissions"),
        ("tracker", "0005_spot_managers"),
        ("postbacks", "0004_status_changes_and_leads"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]

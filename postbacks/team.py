"""The team's groups and what each may do in the admin.

Made by data migrations on every install (and by tests, whose flushed
databases lose what migrations made). What each group *sees* is decided by
crm/visibility.py: crm.view_all_clients, held by team leads, lifts the "own
clients only" filter. Managers work their own clients and send or drop
nothing; team leads also set up spots, pixels, partners and postbacks, and
resend, drop and replay. Deleting what holds the team's history (spots,
goals, postbacks and their logs) is left to superusers.
"""

from django.contrib.auth.management import create_permissions

from crm.visibility import MANAGERS, TEAM_LEADS

MANAGER_PERMISSIONS = [
    "crm.view_client",
    "crm.change_client",  # the card: notes into the chat, custom fields
    "crm.view_conversion",
    "crm.view_message",
    "crm.add_message",
    "crm.view_customfieldvalue",
    "crm.add_customfieldvalue",
    "crm.change_customfieldvalue",
    "crm.view_dailystat",  # the statistics page, their own figures
    "postbacks.view_delivery",
    "postbacks.view_deliveryattempt",
    "postbacks.view_incomingpostback",  # of their own clients
]
SETUP_MODELS = [
    "tracker.spot",
    "tracker.goal",
    "tracker.pixel",
    "tracker.partner",
    "tracker.partnerpostback",
    "tracker.registrationlink",
    "tracker.adaccount",
    "crm.customfield",
    "crm.spend",
    "crm.spendmapping",
    "postbacks.outgoingpostback",
]
TEAM_LEAD_PERMISSIONS = [
    *MANAGER_PERMISSIONS,
    "crm.add_client",
    "crm.change_conversion",
    "crm.change_message",
    "crm.view_all_clients",
    "crm.assign_client",
    "postbacks.resend_delivery",
    "postbacks.replay_incomingpostback",
    "tracker.view_partnerpreset",
    *(
        f"{app}.{action}_{model}"
        for app, model in (label.split(".") for label in SETUP_MODELS)
        for action in ("view", "add", "change")
    ),
]
GROUPS = {MANAGERS: MANAGER_PERMISSIONS, TEAM_LEADS: TEAM_LEAD_PERMISSIONS}


def setup_groups(group_model, permission_model, groups=None):
    """Create the groups and add their permissions; permissions an operator
    gave a group since are kept. Takes the models so a migration can pass its
    historical ones, and the permissions so it can pass the ones of its time."""
    for name, wanted in (groups or GROUPS).items():
        group, _ = group_model.objects.get_or_create(name=name)
        found = []
        for perm in wanted:
            app_label, codename = perm.split(".")
            found.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.add(*found)


def migrate_groups(apps, groups):
    """For a data migration: the permissions of the models as they are at
    that migration (normally made after all migrations ran), then the groups."""
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    setup_groups(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), groups)

"""The team's groups and what each may do in the admin.

Made by the data migration 0004 on every install (and by tests, whose
flushed databases lose what migrations made). What each group *sees* is
decided by crm/visibility.py: crm.view_all_clients, held by team leads,
lifts the "own clients only" filter.
"""

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
]
TEAM_LEAD_PERMISSIONS = [
    *MANAGER_PERMISSIONS,
    "crm.add_client",
    "crm.change_conversion",
    "crm.change_message",
    "crm.view_all_clients",
    "crm.assign_client",
    "postbacks.view_incomingpostback",
]
GROUPS = {MANAGERS: MANAGER_PERMISSIONS, TEAM_LEADS: TEAM_LEAD_PERMISSIONS}


def setup_groups(group_model, permission_model):
    """Create the groups and add their permissions; permissions an operator
    gave a group since are kept. Takes the models so a migration can pass its
    historical ones."""
    for name, wanted in GROUPS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        found = []
        for perm in wanted:
            app_label, codename = perm.split(".")
            found.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.add(*found)

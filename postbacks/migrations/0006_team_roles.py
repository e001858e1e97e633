"""Resending, dropping and replaying become permissions of their own, held by
team leads, who also set up spots, pixels, partners and postbacks; managers
see their clients' incoming postbacks."""

from django.db import migrations

SETUP = [
    f"{app}.{action}_{model}"
    for app, model in [
        ("tracker", "spot"),
        ("tracker", "goal"),
        ("tracker", "pixel"),
        ("tracker", "partner"),
        ("tracker", "partnerpostback"),
        ("tracker", "registrationlink"),
        ("crm", "customfield"),
        ("postbacks", "outgoingpostback"),
    ]
    for action in ("view", "add", "change")
]
ADDED = {
    "Managers": ["postbacks.view_incomingpostback"],
    "Team leads": [
        "postbacks.resend_delivery",
        "postbacks.replay_incomingpostback",
        "tracker.view_partnerpreset",
        *SETUP,
    ],
}


def add_permissions(apps, schema_editor):
    from postbacks.team import migrate_groups

    migrate_groups(apps, ADDED)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0004_money"),
        ("tracker", "0006_goal_revenue"),
        ("postbacks", "0005_team_groups"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="delivery",
            options={
                "ordering": ["-created"],
                "permissions": [("resend_delivery", "Can resend and drop deliveries")],
                "verbose_name_plural": "deliveries",
            },
        ),
        migrations.AlterModelOptions(
            name="incomingpostback",
            options={
                "ordering": ["-received", "-id"],
                "permissions": [("replay_incomingpostback", "Can replay incoming postbacks")],
            },
        ),
        migrations.RunPython(add_permissions, migrations.RunPython.noop),
    ]

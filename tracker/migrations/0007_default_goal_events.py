"""Existing spots' default goals get what new spots start with: the ad networks'
standard event names, sums shown for deposits and a system message each.

Only what is blank is filled: an event name or message a team typed stays.
The values are written out here, not imported from tracker.models, so this
migration means the same thing whatever the defaults become later."""

from django.db import migrations, models

EVENTS = {
    "lead": ("Lead", "SubmitForm", "generate_lead", "lead"),
    "reg": ("CompleteRegistration", "CompleteRegistration", "sign_up", "registration"),
    "dep": ("Purchase", "Purchase", "purchase", "deposit"),
    "redep": ("Purchase", "Purchase", "purchase", "redeposit"),
}
NETWORKS = ("facebook", "tiktok", "google", "yandex")
MESSAGES = {
    "reg": "Registered at the partner",
    "dep": "First deposit {sum} {currency}",
    "redep": "Deposit {sum} {currency}",
}


def fill_default_goals(apps, schema_editor):
    Goal = apps.get_model("tracker", "Goal")
    for token, names in EVENTS.items():
        goals = Goal.objects.filter(token=token)
        for network, name in zip(NETWORKS, names, strict=True):
            goals.filter(**{f"{network}_event": ""}).update(**{f"{network}_event": name})
        if token in MESSAGES:
            goals.filter(message_template="").update(message_template=MESSAGES[token])
    # Deposits count as revenue (0006); their sums belong in the statistics too.
    Goal.objects.filter(token__in=["dep", "redep"]).update(show_sum=True)


class Migration(migrations.Migration):
    dependencies = [("tracker", "0006_goal_revenue")]

    operations = [
        migrations.AlterField(
            model_name="goal",
            name="tiktok_event",
            field=models.CharField(blank=True, help_text="e.g. Purchase", max_length=100),
        ),
        migrations.AlterField(
            model_name="goal",
            name="yandex_event",
            field=models.CharField(
                blank=True,
                help_text="The identifier of a JavaScript-event goal created in Metrica: it "
                "must match that goal (the defaults are lead, registration, deposit, "
                "redeposit).",
                max_length=100,
                verbose_name="Yandex Metrica goal",
            ),
        ),
        migrations.RunPython(fill_default_goals, migrations.RunPython.noop),
    ]

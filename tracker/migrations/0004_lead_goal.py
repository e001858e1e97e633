from django.db import migrations


def add_lead_goal(apps, schema_editor):
    Spot = apps.get_model("tracker", "Spot")
    Goal = apps.get_model("tracker", "Goal")
    for spot in Spot.objects.all():
        Goal.objects.get_or_create(
            spot=spot,
            token="lead",
            defaults={"name": "New lead", "aliases": "", "order": 3, "show_count": False},
        )


class Migration(migrations.Migration):
    dependencies = [("tracker", "0003_pixel_statuses")]

    operations = [migrations.RunPython(add_lead_goal, migrations.RunPython.noop)]

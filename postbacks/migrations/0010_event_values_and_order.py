"""Deliveries keep their event's own values, superseded status changes are
told apart, and the retry budget is time."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0009_previous_amount_places"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="event_amount",
            field=models.DecimalField(blank=True, decimal_places=8, max_digits=28, null=True),
        ),
        migrations.AddField(
            model_name="delivery",
            name="event_currency",
            field=models.CharField(blank=True, max_length=3),
        ),
        migrations.AddField(
            model_name="delivery",
            name="event_time",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="delivery",
            name="retry_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="delivery",
            name="superseded_by",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="delivery",
            name="throttled",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("sending", "Sending"),
                    ("success", "Delivered"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                    ("held", "Held (postback off)"),
                    ("superseded", "Superseded"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
    ]

"""{previous_sum} keeps the 8 decimal places of the conversion's amount."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0008_keitaro_status_words"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="previous_amount",
            field=models.DecimalField(blank=True, decimal_places=8, max_digits=28, null=True),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runner", "0002_runtime_address_placement"),
    ]

    operations = [
        migrations.AddField(
            model_name="runtime",
            name="sleep_tier",
            field=models.CharField(
                blank=True, choices=[("", "awake"), ("frozen", "frozen"), ("deep", "deep")], max_length=10
            ),
        ),
        migrations.AddField(
            model_name="runtime",
            name="frozen_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="runtime",
            name="frozen_bytes",
            field=models.BigIntegerField(default=0),
        ),
    ]

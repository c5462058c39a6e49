from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0006_time_ordered_ids"),
        ("registry", "0010_compliance_key_expiry"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="suspension_reason",
            field=models.TextField(blank=True, verbose_name="reason for the suspension"),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0012_outbox_done"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="suspension_reason",
            field=models.TextField(blank=True, verbose_name="reason for the suspension"),
        ),
    ]

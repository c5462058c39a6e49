"""Issue 13: the per-member dispute quota (empty: REGISTRY_DISPUTE_QUOTA_PER_DAY), the mark of
the closed_text_scrub job on cases and disputes, and that job's default schedule (created
only when missing, like 0003's, so officers' edits survive)."""

from django.db import migrations, models

SCHEDULE = [
    (
        "registry: closed text scrub",
        "registry.jobs.closed_text_scrub",
        ("crontab", "45", "3"),
        3000,
        "Blank the free text of cases closed, and disputes decided, longer ago than "
        "REGISTRY_CLOSED_TEXT_SCRUB_DAYS.",
    ),
]


def seed_schedule(apps, schema_editor):
    from django.utils import timezone

    beat = __import__("registry.migrations.0003_beat_schedule", fromlist=["_crontab"])
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, (_kind, minute, hour), expire_seconds, description in SCHEDULE:
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "kwargs": "{}",
                "expire_seconds": expire_seconds,
                "description": description,
                "enabled": True,
                "crontab": beat._crontab(apps, minute, hour),
            },
        )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0008_audit_checkpoints"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="case",
            name="text_scrubbed_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="text scrubbed at"),
        ),
        migrations.AddField(
            model_name="dispute",
            name="text_scrubbed_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="text scrubbed at"),
        ),
        migrations.AddField(
            model_name="member",
            name="dispute_quota_per_day",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Disputes this member may file in any 24 hours; empty for the default.",
                null=True,
                verbose_name="disputes per day",
            ),
        ),
        migrations.RunPython(seed_schedule, migrations.RunPython.noop),
    ]

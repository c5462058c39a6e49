"""Limits in units of work (LimitScope, with "evaluate" as its own budget), the PostgreSQL
counter used while Redis is down, the members' daily usage for the usage signals, and the
hourly usage_signals job in the default schedule."""

import importlib

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

_schedule = importlib.import_module("registry.migrations.0003_beat_schedule")
USAGE_SIGNALS = (
    "registry: usage signals",
    "registry.jobs.usage_signals",
    (_schedule.CRON, "50", "*"),
    3000,
    "Roll up the members' daily usage and alert officers to days far from a member's usual.",
)


def seed_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    name, task, (_kind, minute, hour), expire_seconds, description = USAGE_SIGNALS
    PeriodicTask.objects.get_or_create(
        name=name,
        defaults={
            "task": task,
            "kwargs": "{}",
            "expire_seconds": expire_seconds,
            "description": description,
            "enabled": True,
            "crontab": _schedule._crontab(apps, minute, hour),
        },
    )
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": django.utils.timezone.now()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0006_time_ordered_ids"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name="memberlimit",
            name="per_day",
            field=models.PositiveIntegerField(verbose_name="units per day"),
        ),
        migrations.AlterField(
            model_name="memberlimit",
            name="per_minute",
            field=models.PositiveIntegerField(verbose_name="units per minute"),
        ),
        migrations.AlterField(
            model_name="memberlimit",
            name="scope",
            field=models.CharField(
                choices=[
                    ("evaluate", "OPRF evaluate (one unit per element)"),
                    ("lookup", "Lookups (one unit per identifier)"),
                    ("submit", "Submit cases (one unit per call)"),
                    ("dispute", "Disputes (one unit per call)"),
                ],
                max_length=16,
                verbose_name="scope",
            ),
        ),
        migrations.CreateModel(
            name="MemberDailyUsage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField(verbose_name="day")),
                (
                    "elements_evaluated",
                    models.PositiveBigIntegerField(default=0, verbose_name="elements evaluated"),
                ),
                (
                    "identifiers_looked_up",
                    models.PositiveBigIntegerField(default=0, verbose_name="identifiers looked up"),
                ),
                (
                    "distinct_identifiers",
                    models.PositiveBigIntegerField(
                        default=0, verbose_name="distinct identifiers looked up"
                    ),
                ),
                (
                    "identifiers_matched",
                    models.PositiveBigIntegerField(default=0, verbose_name="identifiers matched"),
                ),
                (
                    "disputes_filed",
                    models.PositiveIntegerField(default=0, verbose_name="disputes filed"),
                ),
                ("computed_at", models.DateTimeField(verbose_name="computed at")),
                (
                    "member",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="daily_usage",
                        to="registry.member",
                    ),
                ),
            ],
            options={
                "verbose_name": "daily usage",
                "verbose_name_plural": "daily usage",
                "constraints": [
                    models.UniqueConstraint(fields=("member", "day"), name="one_usage_row_per_day")
                ],
            },
        ),
        migrations.CreateModel(
            name="QuotaCounter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("evaluate", "OPRF evaluate (one unit per element)"),
                            ("lookup", "Lookups (one unit per identifier)"),
                            ("submit", "Submit cases (one unit per call)"),
                            ("dispute", "Disputes (one unit per call)"),
                        ],
                        max_length=16,
                    ),
                ),
                ("window", models.CharField(max_length=1)),
                ("start", models.BigIntegerField()),
                ("used", models.PositiveIntegerField()),
                ("updated_at", models.DateTimeField(db_index=True)),
                (
                    "member",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="registry.member",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("member", "scope", "window"), name="one_quota_counter_per_window"
                    )
                ],
            },
        ),
        migrations.RunPython(seed_schedule, migrations.RunPython.noop),
    ]

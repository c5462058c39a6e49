"""Issue 19: rings (services/rings.py). The ring tables, the officers' and auditors' right to
view them (no one may change them by hand), and the daily rebuild's default schedule
(created only when missing, like 0003's, so officers' edits survive)."""

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE = [
    (
        "registry: ring rebuild",
        "registry.jobs.ring_rebuild",
        ("crontab", "20", "4"),
        3000,
        "Recompute every ring from the shared identifiers and refresh their growth figures.",
    ),
]


def seed(apps, schema_editor):
    """The groups' view permission on rings, and the rebuild's schedule."""
    from django.utils import timezone

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    ct, _ = ContentType.objects.get_or_create(app_label="registry", model="ring")
    perm, _ = Permission.objects.get_or_create(
        content_type=ct, codename="view_ring", defaults={"name": "Can view ring"}
    )
    for name in ("compliance_officers", "compliance_auditors"):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(perm)

    beat = __import__("registry.migrations.0003_beat_schedule", fromlist=["_crontab"])
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, (kind, *when), expire_seconds, description in SCHEDULE:
        schedule = (
            {"interval": beat._interval(apps, *when)}
            if kind == "interval"
            else {"crontab": beat._crontab(apps, *when)}
        )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "kwargs": "{}",
                "expire_seconds": expire_seconds,
                "description": description,
                "enabled": True,
                **schedule,
            },
        )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0016_case_member_withdrawn"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="Ring",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("size", models.PositiveIntegerField(verbose_name="cases")),
                ("member_count", models.PositiveIntegerField(verbose_name="members")),
                (
                    "shared_identifiers",
                    models.PositiveIntegerField(default=0, verbose_name="shared identifiers"),
                ),
                (
                    "grown_7d",
                    models.PositiveIntegerField(default=0, verbose_name="new cases in 7 days"),
                ),
                (
                    "grown_30d",
                    models.PositiveIntegerField(default=0, verbose_name="new cases in 30 days"),
                ),
                ("first_seen_at", models.DateTimeField(verbose_name="first seen")),
                ("last_grown_at", models.DateTimeField(verbose_name="newest case")),
                ("computed_at", models.DateTimeField(verbose_name="computed at")),
            ],
            options={
                "verbose_name": "ring",
                "verbose_name_plural": "rings",
                "ordering": ["-size", "-id"],
                "indexes": [
                    models.Index(fields=["-size", "-id"], name="ring_largest"),
                    models.Index(fields=["-grown_7d", "-id"], name="ring_growing"),
                    models.Index(fields=["-grown_30d", "-id"], name="ring_growing_month"),
                ],
            },
        ),
        migrations.CreateModel(
            name="RingCase",
            fields=[
                (
                    "case",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="ring_membership",
                        serialize=False,
                        to="registry.case",
                    ),
                ),
                (
                    "ring",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="registry.ring",
                    ),
                ),
            ],
            options={
                "verbose_name": "case of a ring",
                "verbose_name_plural": "cases of rings",
                "indexes": [models.Index(fields=["ring"], name="ringcase_ring")],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]

"""The default schedule of the background jobs (django-celery-beat). Officers edit it in the
admin (Periodic tasks); this migration only creates what is missing (get_or_create by name),
so their edits survive.

expire_seconds: a run that no worker picked up in time is dropped rather than piled up behind
a stopped worker; the next scheduled run does the same work.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

EVERY = "interval"
CRON = "crontab"

# name, task, schedule, expire_seconds, description
DEFAULT_SCHEDULE = [
    (
        "registry: audit seal",
        "registry.jobs.audit_seal",
        (EVERY, 10, "seconds"),
        30,
        "Chain new audit events into the hash chain (lag shown in /readyz).",
    ),
    (
        "registry: outbox sweep",
        "registry.jobs.outbox_sweep",
        (EVERY, 30, "seconds"),
        60,
        "Publish tasks the broker missed; delete delivered outbox rows after a day.",
    ),
    (
        "registry: dispute deadlines",
        "registry.disputes.sweep_deadlines",
        (EVERY, 15, "minutes"),
        600,
        "Mark overdue disputes; send reminders and overdue alerts.",
    ),
    (
        "registry: expiry",
        "registry.jobs.expiry",
        (CRON, "5", "*"),
        3000,
        "Expire cases past their retention and delete their identifiers.",
    ),
    (
        "registry: idempotency retention",
        "registry.jobs.idempotency_retention",
        (CRON, "35", "*"),
        3000,
        "Delete expired idempotency keys and old job runs.",
    ),
    (
        "registry: lookup log retention",
        "registry.jobs.lookup_log_retention",
        (CRON, "15", "3"),
        3000,
        "Delete lookup log rows and sightings older than the longest velocity window.",
    ),
    (
        "registry: pepper rotation",
        "registry.jobs.pepper_rotation",
        (EVERY, 10, "minutes"),
        500,
        "Re-key stored digests to the current pepper (returns at once when done).",
    ),
]


def _interval(apps, every: int, period: str):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    found = IntervalSchedule.objects.filter(every=every, period=period).first()
    return found or IntervalSchedule.objects.create(every=every, period=period)


def _crontab(apps, minute: str, hour: str):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    fields = {
        "minute": minute,
        "hour": hour,
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": settings.CELERY_TIMEZONE,
    }
    found = CrontabSchedule.objects.filter(**fields).first()
    return found or CrontabSchedule.objects.create(**fields)


def seed_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, (kind, *when), expire_seconds, description in DEFAULT_SCHEDULE:
        schedule = (
            {"interval": _interval(apps, *when)}
            if kind == EVERY
            else {"crontab": _crontab(apps, *when)}
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
    # Tell a running beat (DatabaseScheduler) that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_audit_triggers_groups_categories"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed_schedule, migrations.RunPython.noop)]

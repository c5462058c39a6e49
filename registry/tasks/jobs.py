"""Housekeeping jobs (expiry, retention, sealing, outbox, pepper rotation, text scrub), thin:
each task runs one job of registry/services/jobs, which records a JobRun and does the work in short,
idempotent batches. Beat publishes them on the schedule officers edit in the admin
(django-celery-beat; defaults in migration 0003_beat_schedule).

A database error (the database restarting, a failover) makes the task retry with exponential
backoff: nothing is half-done, since every batch is its own transaction. The dispute deadline
sweep is the disputes area's task: registry.disputes.sweep_deadlines (tasks/notifications.py).

The tasks take NO arguments, and always act as of the worker's clock: whoever can write to
the broker must not be able to move "now" (a message saying it is 2040 would expire every
case) or cut a job short. Acting as of another time is for operators only, by hand:
`python manage.py run_job expiry --now ...`. A message with arguments fails (TypeError) and
changes nothing.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from registry.services.jobs import job_execute

RETRY_ON_DATABASE_ERRORS = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="registry.jobs.expiry", **RETRY_ON_DATABASE_ERRORS)
def expiry() -> dict:
    return job_execute("expiry")


@shared_task(name="registry.jobs.lookup_log_retention", **RETRY_ON_DATABASE_ERRORS)
def lookup_log_retention() -> dict:
    return job_execute("lookup_log_retention")


@shared_task(name="registry.jobs.idempotency_retention", **RETRY_ON_DATABASE_ERRORS)
def idempotency_retention() -> dict:
    return job_execute("idempotency_retention")


@shared_task(name="registry.jobs.outbox_sweep", **RETRY_ON_DATABASE_ERRORS)
def outbox_sweep() -> dict:
    return job_execute("outbox_sweep")


@shared_task(name="registry.jobs.audit_seal", **RETRY_ON_DATABASE_ERRORS)
def audit_seal() -> dict:
    return job_execute("audit_seal")


@shared_task(name="registry.jobs.pepper_rotation", **RETRY_ON_DATABASE_ERRORS)
def pepper_rotation() -> dict:
    return job_execute("pepper_rotation")


@shared_task(name="registry.jobs.usage_signals", **RETRY_ON_DATABASE_ERRORS)
def usage_signals() -> dict:
    return job_execute("usage_signals")


@shared_task(name="registry.jobs.closed_text_scrub", **RETRY_ON_DATABASE_ERRORS)
def closed_text_scrub() -> dict:
    return job_execute("closed_text_scrub")


@shared_task(name="registry.jobs.velocity_alerts", **RETRY_ON_DATABASE_ERRORS)
def velocity_alerts() -> dict:
    return job_execute("velocity_alerts")


@shared_task(name="registry.jobs.watch_housekeeping", **RETRY_ON_DATABASE_ERRORS)
def watch_housekeeping() -> dict:
    return job_execute("watch_housekeeping")


@shared_task(name="registry.jobs.webhook_deliveries", **RETRY_ON_DATABASE_ERRORS)
def webhook_deliveries() -> dict:
    return job_execute("webhook_deliveries")


@shared_task(name="registry.jobs.partition_maintenance", **RETRY_ON_DATABASE_ERRORS)
def partition_maintenance() -> dict:
    return job_execute("partition_maintenance")

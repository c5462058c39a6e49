"""Housekeeping jobs (expiry, retention, sealing, outbox, pepper rotation, text scrub), thin:
each task runs one job of registry/services/jobs, which records a JobRun and does the work in short,
idempotent batches. Beat publishes them on the schedule officers edit in the admin
(django-celery-beat; defaults in migration 0003_beat_schedule).

A database error (the database restarting, a failover) makes the task retry with exponential
backoff: nothing is half-done, since every batch is its own transaction. The dispute deadline
sweep is the disputes area's task: registry.disputes.sweep_deadlines (tasks/notifications.py).

`now_iso` (an ISO 8601 time with offset) makes a job act as of another time than now: for
tests and operators catching up; beat never sends it.
"""

from datetime import datetime

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


def _run(name: str, now_iso: str | None, max_batches: int | None) -> dict:
    now = datetime.fromisoformat(now_iso) if now_iso else None
    return job_execute(name, now=now, max_batches=max_batches)


@shared_task(name="registry.jobs.expiry", **RETRY_ON_DATABASE_ERRORS)
def expiry(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("expiry", now_iso, max_batches)


@shared_task(name="registry.jobs.lookup_log_retention", **RETRY_ON_DATABASE_ERRORS)
def lookup_log_retention(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("lookup_log_retention", now_iso, max_batches)


@shared_task(name="registry.jobs.idempotency_retention", **RETRY_ON_DATABASE_ERRORS)
def idempotency_retention(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("idempotency_retention", now_iso, max_batches)


@shared_task(name="registry.jobs.outbox_sweep", **RETRY_ON_DATABASE_ERRORS)
def outbox_sweep(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("outbox_sweep", now_iso, max_batches)


@shared_task(name="registry.jobs.audit_seal", **RETRY_ON_DATABASE_ERRORS)
def audit_seal(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("audit_seal", now_iso, max_batches)


@shared_task(name="registry.jobs.pepper_rotation", **RETRY_ON_DATABASE_ERRORS)
def pepper_rotation(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("pepper_rotation", now_iso, max_batches)


@shared_task(name="registry.jobs.usage_signals", **RETRY_ON_DATABASE_ERRORS)
def usage_signals(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("usage_signals", now_iso, max_batches)


@shared_task(name="registry.jobs.closed_text_scrub", **RETRY_ON_DATABASE_ERRORS)
def closed_text_scrub(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("closed_text_scrub", now_iso, max_batches)


@shared_task(name="registry.jobs.velocity_alerts", **RETRY_ON_DATABASE_ERRORS)
def velocity_alerts(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("velocity_alerts", now_iso, max_batches)


@shared_task(name="registry.jobs.watch_housekeeping", **RETRY_ON_DATABASE_ERRORS)
def watch_housekeeping(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("watch_housekeeping", now_iso, max_batches)


@shared_task(name="registry.jobs.webhook_deliveries", **RETRY_ON_DATABASE_ERRORS)
def webhook_deliveries(now_iso: str | None = None, max_batches: int | None = None) -> dict:
    return _run("webhook_deliveries", now_iso, max_batches)

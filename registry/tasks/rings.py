"""Rings (services/rings.py). Thin: ids in, one idempotent service call. The update runs
after each submission and closure (queued through the outbox by case_lifecycle); the daily
rebuild is a beat job like the others (tasks/jobs.py: no arguments, the worker's clock)."""

from celery import shared_task

from registry.services import rings
from registry.services.jobs import job_execute
from registry.tasks.jobs import RETRY_ON_DATABASE_ERRORS


@shared_task(name="registry.rings.update_for_cases", **RETRY_ON_DATABASE_ERRORS)
def update_for_cases(case_ids: list[str]) -> dict:
    return rings.ring_update_for_cases(case_ids=case_ids)


@shared_task(name="registry.jobs.ring_rebuild", **RETRY_ON_DATABASE_ERRORS)
def ring_rebuild() -> dict:
    return job_execute("ring_rebuild")

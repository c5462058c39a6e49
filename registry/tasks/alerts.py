"""Watch alerts. Thin: ids in, one idempotent service call (services/alerts.py reconciles
each case with its state now, so a task published twice or late is harmless)."""

from celery import shared_task

from registry.services import alerts
from registry.tasks.jobs import RETRY_ON_DATABASE_ERRORS


@shared_task(name="registry.alerts.for_cases", **RETRY_ON_DATABASE_ERRORS)
def for_cases(case_ids: list[str]) -> int:
    return alerts.alerts_for_cases(case_ids=case_ids)

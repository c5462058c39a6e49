"""Watch alerts and their webhook deliveries. Thin: ids in, one idempotent service call
(services/alerts.py reconciles each case with its state now; services/webhooks.py attempts a
delivery only while it is due), so a task published twice or late is harmless."""

from celery import shared_task

from registry.services import alerts, webhooks
from registry.tasks.jobs import RETRY_ON_DATABASE_ERRORS


@shared_task(name="registry.alerts.for_cases", **RETRY_ON_DATABASE_ERRORS)
def for_cases(case_ids: list[str]) -> int:
    return alerts.alerts_for_cases(case_ids=case_ids)


@shared_task(name="registry.webhooks.deliver", **RETRY_ON_DATABASE_ERRORS)
def deliver(delivery_ids: list[int]) -> list[str]:
    return [webhooks.webhook_delivery_attempt(delivery_id=pk) for pk in delivery_ids]

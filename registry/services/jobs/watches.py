"""Monitoring jobs: velocity alerts (every minute), webhook deliveries (every 30 s: retries
and deliveries whose worker died) and watch housekeeping (daily: delete expired watches, then
alerts older than REGISTRY_ALERT_RETENTION_DAYS)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.services.alerts import alerts_purge_before, velocity_alerts_scan
from registry.services.audit import audit_record
from registry.services.jobs.batches import job_batch_size, job_now, more_batches_allowed
from registry.services.watches import watches_expire_batch
from registry.services.webhooks import webhook_deliveries_sweep


def velocity_alerts_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    return velocity_alerts_scan(now=job_now(now))


def watch_housekeeping_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """A watch lives through its `expires_on` day and is deleted after it."""
    now = job_now(now)
    today = timezone.localdate(now)
    size = job_batch_size(batch_size)
    expired = batches = 0
    while more_batches_allowed(batches, max_batches):
        count = watches_expire_batch(today=today, batch_size=size)
        if not count:
            break
        expired += count
        batches += 1
    before = now - timedelta(days=settings.REGISTRY_ALERT_RETENTION_DAYS)
    purged = alerts_purge_before(before=before, batch_size=size, max_batches=max_batches)
    if purged:
        audit_record(
            actor=Actor.system(),
            action=AuditAction.ALERTS_PURGED,
            object_type="alert",
            details={"alerts": purged, "created_before": before.isoformat()},
        )
    return {"watches_expired": expired, "alerts_purged": purged}


def webhook_deliveries_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    return webhook_deliveries_sweep(now=now)

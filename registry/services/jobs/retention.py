"""Retention of operational data, deleted in short batches (see batches.delete_in_batches):

- sightings: Sighting rollup rows whose `last_seen_at` is older than the longest velocity
  window (REGISTRY_VELOCITY_RETENTION_DAYS, 90 days by default): velocity never counts them
  any more. (Lookups and the lookup log are kept for the law's query-record period,
  REGISTRY_LOOKUP_LOG_RETENTION_MONTHS, and leave by whole monthly partitions: the
  partition_maintenance job, services/partitions.py. Never row by row: that would cost in
  proportion to the log's size.)
- idempotency keys older than their lifetime (REGISTRY_IDEMPOTENCY_TTL_HOURS, never under
  24 h: services/idempotency.py treats an older key as unused anyway); the same hourly job
  deletes finished JobRun rows past REGISTRY_JOB_RUN_RETENTION_DAYS.

Every batch records one audit event (table, count, cutoff) in its own transaction.
"""

from datetime import datetime, timedelta

from django.conf import settings

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import IdempotencyKey, Sighting
from registry.services.audit import audit_record
from registry.services.idempotency import idempotency_ttl
from registry.services.jobs.batches import delete_in_batches, job_batch_size, job_now
from registry.services.jobs.housekeeping import job_runs_purge


def lookup_log_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=settings.REGISTRY_VELOCITY_RETENTION_DAYS)


def lookup_log_retention_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """Sightings past the velocity window (the job keeps its historical name)."""
    cutoff = lookup_log_cutoff(job_now(now))
    tables = (("sighting", Sighting.objects.filter(last_seen_at__lt=cutoff)),)
    return _purge_tables(
        tables,
        cutoff=cutoff,
        action=AuditAction.LOOKUP_LOG_PURGED,
        batch_size=batch_size,
        max_batches=max_batches,
    )


def idempotency_retention_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    now = job_now(now)
    cutoff = now - idempotency_ttl()
    tables = (("idempotency_key", IdempotencyKey.objects.filter(created_at__lte=cutoff)),)
    summary = _purge_tables(
        tables,
        cutoff=cutoff,
        action=AuditAction.IDEMPOTENCY_KEYS_PURGED,
        batch_size=batch_size,
        max_batches=max_batches,
    )
    summary["job_runs_deleted"] = job_runs_purge(
        now=now, batch_size=job_batch_size(batch_size), max_batches=max_batches
    )
    return summary


def _purge_tables(
    tables, *, cutoff: datetime, action: AuditAction, batch_size, max_batches
) -> dict:
    size = job_batch_size(batch_size)
    summary = {"older_than": cutoff.isoformat(), "batches": 0, "deleted": {}}
    for table, queryset in tables:
        left = None if max_batches is None else max_batches - summary["batches"]
        if left is not None and left <= 0:
            break
        deleted, batches = delete_in_batches(
            queryset,
            batch_size=size,
            max_batches=left,
            on_batch=_audit_batch(action=action, table=table, cutoff=cutoff),
        )
        summary["deleted"][table] = deleted
        summary["batches"] += batches
    return summary


def _audit_batch(*, action: AuditAction, table: str, cutoff: datetime):
    def record(count: int) -> None:
        audit_record(
            actor=Actor.system(),
            action=action,
            object_type=table,
            details={"table": table, "deleted": count, "older_than": cutoff.isoformat()},
        )

    return record

"""Partition maintenance (registry/services/partitions.py), daily: months ahead created, rows
that fell into a DEFAULT partition moved to their month, and lookup and lookup-log months
wholly past REGISTRY_LOOKUP_LOG_RETENTION_MONTHS detached and dropped. Idempotent: a second
run the same day finds everything done. Each partition created or dropped is one transaction
with its audit event; the summary lists them."""

from datetime import datetime

from registry.services.jobs.batches import job_now
from registry.services.partitions import partitions_maintain


def partition_maintenance_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    return partitions_maintain(now=job_now(now))

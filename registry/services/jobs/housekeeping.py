"""Frequent small jobs: sealing the audit trail, publishing the outbox (and deleting its
done rows), and keeping the JobRun table short."""

from datetime import datetime, timedelta

from django.conf import settings

from registry.models import JobRun, OutboxTask
from registry.services.audit import audit_checkpoint, audit_seal, audit_seal_lag_seconds
from registry.services.jobs.batches import delete_in_batches, job_batch_size, job_now
from registry.services.outbox import outbox_sweep

DONE_OUTBOX_KEPT = timedelta(days=1)
# audit_seal seals at most this many events per call; the job calls it until it is done.
SEAL_CHUNK = 10_000


def audit_seal_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """Seal every committed, unsealed audit event (each call of audit_seal is one transaction
    of at most SEAL_CHUNK events). Stops early when another sealer holds the lock. Then signs
    a checkpoint of the head when the newest is about to be REGISTRY_AUDIT_CHECKPOINT_SECONDS
    old (the sealer runs every 10 seconds: no separate schedule to forget)."""
    sealed = calls = 0
    while max_batches is None or calls < max_batches:
        count = audit_seal(limit=SEAL_CHUNK)
        calls += 1
        sealed += count
        if count < SEAL_CHUNK:
            break
    checkpoint = audit_checkpoint(now=now)
    summary = {"sealed": sealed, "batches": calls}
    if checkpoint is not None:
        # The checkpoint's own audit event, sealed now rather than on the next run.
        audit_seal(limit=SEAL_CHUNK)
        summary["checkpoint"] = {"id": checkpoint.pk, "seq": checkpoint.seq}
    summary["lag_seconds"] = round(audit_seal_lag_seconds(), 1)
    return summary


def outbox_sweep_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """Publish what the outbox still holds (the broker was down when its writer committed),
    publish again what was published but never done (its worker died), then delete rows done
    more than a day ago."""
    now = job_now(now)
    size = job_batch_size(batch_size)
    counts = outbox_sweep()
    purged_outbox, _batches = delete_in_batches(
        OutboxTask.objects.filter(done_at__lt=now - DONE_OUTBOX_KEPT),
        batch_size=size,
        max_batches=max_batches,
    )
    return {**counts, "done_rows_deleted": purged_outbox}


def job_runs_purge(*, now: datetime, batch_size: int, max_batches: int | None) -> int:
    """Finished job runs older than REGISTRY_JOB_RUN_RETENTION_DAYS (the sealer alone
    records one every 10 seconds). Part of the hourly housekeeping job."""
    deleted, _batches = delete_in_batches(
        JobRun.objects.filter(
            started_at__lt=now - timedelta(days=settings.REGISTRY_JOB_RUN_RETENTION_DAYS)
        ).exclude(status=JobRun.Status.RUNNING),
        batch_size=batch_size,
        max_batches=max_batches,
    )
    return deleted

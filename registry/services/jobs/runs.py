"""JobRun bookkeeping: one row per run of a background job, for operators (`run_job
--status`) and the admin's job-health panel.

Semantics of a JobRun row:
- `running`: created (and committed) when the run starts, so a run in progress is visible;
- `succeeded`: finished; `details` holds the job's summary (counts, batches, ids of what it
  touched where that is short);
- `failed`: the job raised; `details.error` is the exception's class, `details.message` its
  text. A run whose process died (SIGKILL, machine lost) stays `running` until the next run of
  the same job finds it older than ABANDONED_AFTER and marks it failed with
  `details.error = "abandoned"`. Work done by committed batches of such a run stays done: each
  job commits batch by batch and the next run finishes the rest.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone

from registry.models import JobRun

logger = logging.getLogger(__name__)

# No job holds a batch this long: a run still "running" after it has lost its process.
ABANDONED_AFTER = timedelta(hours=6)


@contextmanager
def job_run(name: str) -> Iterator[JobRun]:
    """Record one run of `name`. The body puts its summary in `run.details`."""
    _mark_abandoned(name)
    run = JobRun.objects.create(
        job=name, status=JobRun.Status.RUNNING, started_at=timezone.now(), details={}
    )
    try:
        yield run
    except Exception as exc:
        _finish(
            run,
            JobRun.Status.FAILED,
            {**run.details, "error": type(exc).__name__, "message": str(exc)[:500]},
        )
        raise
    _finish(run, JobRun.Status.SUCCEEDED, run.details)


def _finish(run: JobRun, status: str, details: dict) -> None:
    run.status, run.details, run.finished_at = status, details, timezone.now()
    try:
        run.save(update_fields=["status", "details", "finished_at"])
    except DatabaseError:
        # The database is what failed (the task retries): do not hide the original error.
        logger.warning(
            "could not record the end of a job run", extra={"job": run.job, "job_run_id": run.pk}
        )


def _mark_abandoned(name: str) -> int:
    return JobRun.objects.filter(
        job=name,
        status=JobRun.Status.RUNNING,
        started_at__lt=timezone.now() - ABANDONED_AFTER,
    ).update(
        status=JobRun.Status.FAILED, finished_at=timezone.now(), details={"error": "abandoned"}
    )


def job_runs_latest() -> dict[str, JobRun]:
    """The most recent run of each job (for `run_job --status` and the admin)."""
    latest = JobRun.objects.order_by("job", "-started_at").distinct("job")
    return {run.job: run for run in latest}

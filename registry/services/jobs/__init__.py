"""Background jobs (run by Celery beat through registry/tasks/jobs.py, or by hand with
`python manage.py run_job <name>`). Each job is a function

    <name>_run(*, now=None, batch_size=None, max_batches=None) -> dict

that is idempotent, commits batch by batch (so a crash loses at most one batch, which the next
run redoes), acts as of `now` (tests and operators move time instead of waiting), and returns
a JSON summary that `job_execute` stores on the run's JobRun row.
"""

from collections.abc import Callable
from datetime import datetime

from registry.services.jobs.runs import job_run


def _dispute_deadlines_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    from registry.services.disputes import dispute_deadlines_sweep

    return dispute_deadlines_sweep(now=now)


def _jobs() -> dict[str, Callable[..., dict]]:
    from registry.services.jobs.expiry import expiry_run
    from registry.services.jobs.housekeeping import audit_seal_run, outbox_sweep_run
    from registry.services.jobs.partitions import partition_maintenance_run
    from registry.services.jobs.retention import idempotency_retention_run, lookup_log_retention_run
    from registry.services.jobs.rings import ring_rebuild_run
    from registry.services.jobs.rotation import pepper_rotation_run
    from registry.services.jobs.scrub import closed_text_scrub_run
    from registry.services.jobs.watches import (
        velocity_alerts_run,
        watch_housekeeping_run,
        webhook_deliveries_run,
    )
    from registry.services.usage import usage_signals_run

    return {
        "expiry": expiry_run,
        "lookup_log_retention": lookup_log_retention_run,
        "idempotency_retention": idempotency_retention_run,
        "outbox_sweep": outbox_sweep_run,
        "audit_seal": audit_seal_run,
        "dispute_deadlines": _dispute_deadlines_run,
        "pepper_rotation": pepper_rotation_run,
        "usage_signals": usage_signals_run,
        "closed_text_scrub": closed_text_scrub_run,
        "velocity_alerts": velocity_alerts_run,
        "watch_housekeeping": watch_housekeeping_run,
        "webhook_deliveries": webhook_deliveries_run,
        "partition_maintenance": partition_maintenance_run,
        "ring_rebuild": ring_rebuild_run,
    }


JOB_NAMES = (
    "expiry",
    "lookup_log_retention",
    "idempotency_retention",
    "outbox_sweep",
    "audit_seal",
    "dispute_deadlines",
    "pepper_rotation",
    "usage_signals",
    "closed_text_scrub",
    "velocity_alerts",
    "watch_housekeeping",
    "webhook_deliveries",
    "partition_maintenance",
    "ring_rebuild",
)


def job_execute(
    name: str,
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> dict:
    """Run one job now, in this process, recording a JobRun. Raises KeyError for an unknown
    name."""
    function = _jobs()[name]
    with job_run(name) as run:
        run.details = function(now=now, batch_size=batch_size, max_batches=max_batches)
    return run.details

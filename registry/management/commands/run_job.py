"""Run a background job by hand, in this process (no broker needed), or show what each job
did last.

    python manage.py run_job expiry
    python manage.py run_job lookup_log_retention --now 2027-01-01T00:00:00+08:00
    python manage.py run_job pepper_rotation --batch-size 1000 --max-batches 10
    python manage.py run_job --status
"""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from registry.services.jobs import JOB_NAMES, job_execute
from registry.services.jobs.rotation import RotationUnfinished
from registry.services.jobs.runs import job_runs_latest


def _aware_datetime(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("give a time with an offset, e.g. 2027-01-01T00:00:00+08:00")
    return moment


class Command(BaseCommand):
    help = "Run one background job now (" + ", ".join(JOB_NAMES) + "), or --status."

    def add_arguments(self, parser):
        parser.add_argument("job", nargs="?", choices=JOB_NAMES)
        parser.add_argument(
            "--status", action="store_true", help="show the last run of every job and exit"
        )
        parser.add_argument(
            "--now", type=_aware_datetime, help="act as of this time (ISO 8601 with offset)"
        )
        parser.add_argument("--batch-size", type=int, help="rows per batch (transaction)")
        parser.add_argument("--max-batches", type=int, help="stop after this many batches")

    def handle(self, *args, job, status, now, batch_size, max_batches, **options):
        if status:
            self._show_status()
            return
        if job is None:
            raise CommandError("Name a job (" + ", ".join(JOB_NAMES) + ") or give --status.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            summary = job_execute(job, now=now, batch_size=batch_size, max_batches=max_batches)
        except RotationUnfinished as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"job": job, **summary}, default=str))

    def _show_status(self):
        latest = job_runs_latest()
        for name in JOB_NAMES:
            run = latest.get(name)
            if run is None:
                self.stdout.write(f"{name}: never run")
                continue
            finished = run.finished_at.isoformat() if run.finished_at else "-"
            self.stdout.write(
                f"{name}: {run.status} started {run.started_at.isoformat()} finished {finished} "
                f"{json.dumps(run.details, default=str)}"
            )

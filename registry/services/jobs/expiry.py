"""Expiry: a case past its `expires_at` leaves the registry for good. Its status becomes
`expired` and its identifier digests are DELETED (not flagged), set-based: one UPDATE and one
DELETE per batch (case_lifecycle.cases_expire, the life cycle's move for this job).

Lookups stop matching a case on its expiry date by themselves (selectors/cases.py checks
`expires_at` at lookup time), so the job is about erasure, not visibility, and may lag.

Each batch is one transaction: lock up to `batch_size` due cases (FOR UPDATE SKIP LOCKED),
delete their identifiers, mark them expired, record ONE audit event (counts and case ids).
Consequences:
- a crash (SIGKILL included) leaves the committed batches done and rolls back the batch in
  flight entirely; the next run picks up exactly what is left;
- two runs at once never take the same case (the second skips rows the first has locked, and
  re-checks the status of rows the first has committed), so no case is expired or audited
  twice, and together they expire everything that was due;
- a transaction holds at most `batch_size` cases (each with up to 20 identifiers), so lookups
  (which never wait on row locks) and submissions are not held up by a large backlog.

Undecided disputes of an expiring case are left to the compliance officers (the disputes
service keeps an expired case expired whatever they decide); their ids are in the audit event.
"""

import time
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import UNDECIDED_DISPUTE_STATUSES, Dispute
from registry.services.audit import audit_record
from registry.services.case_lifecycle import cases_expire, expirable_cases
from registry.services.jobs.batches import (
    job_batch_size,
    job_now,
    more_batches_allowed,
    pause_inside_batch,
    rest_after_batch,
)


def expiry_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """Expire every live case whose expiry date is today or earlier (as of `now`)."""
    today = timezone.localdate(job_now(now))
    size = job_batch_size(batch_size)
    summary = {
        "expires_on_or_before": today.isoformat(),
        "batches": 0,
        "cases_expired": 0,
        "identifiers_purged": 0,
    }
    while more_batches_allowed(summary["batches"], max_batches):
        started = time.monotonic()
        batch = _expire_batch(today=today, batch_size=size)
        if batch is None:
            break
        summary["batches"] += 1
        summary["cases_expired"] += batch["cases"]
        summary["identifiers_purged"] += batch["identifiers_purged"]
        rest_after_batch(started)
    return summary


def due_cases(today: date):
    return expirable_cases().filter(expires_at__lte=today)


@transaction.atomic
def _expire_batch(*, today: date, batch_size: int) -> dict | None:
    case_ids = list(
        due_cases(today)
        .order_by("expires_at", "id")
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)[:batch_size]
    )
    if not case_ids:
        return None
    purged = cases_expire(case_ids=case_ids)
    disputes = Dispute.objects.filter(case_id__in=case_ids, status__in=UNDECIDED_DISPUTE_STATUSES)
    details = {
        "cases": len(case_ids),
        "identifiers_purged": purged,
        "expires_on_or_before": today.isoformat(),
        "case_ids": [str(case_id) for case_id in case_ids],
        "undecided_dispute_ids": [str(pk) for pk in disputes.values_list("id", flat=True)],
    }
    audit_record(
        actor=Actor.system(), action=AuditAction.CASES_EXPIRED, object_type="case", details=details
    )
    pause_inside_batch()
    return details

"""Closed does not mean gone, unless something removes it: this job blanks the free text of
cases that left the registry (withdrawn, removed, expired) and of decided disputes, once
REGISTRY_CLOSED_TEXT_SCRUB_DAYS (30 by default) have passed since the closure or decision.

What it blanks, and what stays:
- a closed case keeps its id, member, category, status, dates (confirmed, expires, created,
  status changed) and `text_scrubbed_at`; its `reference` (the member's own file number, which
  names the person at that member) and its `subject_statement` become empty. Its identifier
  digests went at closure already (case_lifecycle.case_close, expiry).
- a decided dispute keeps its id, case, filing member, reason, status, dates and position;
  its `statement`, `response_statement` and `rationale` become empty.
The grace period lets the member reconcile its own files and the officers answer questions
about a fresh decision; after it, the rows prove that a case existed and how it ended, and
nothing on them points at a person.

Batches as in the other jobs: each one locks up to `batch_size` rows (FOR UPDATE SKIP LOCKED),
blanks them with one UPDATE and records ONE audit event with counts only (never ids, never
text). Idempotent: a scrubbed row has `text_scrubbed_at` and is not taken again.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import Case, Dispute, DisputeStatus
from registry.services.audit import audit_record
from registry.services.case_lifecycle import CLOSED_STATUSES
from registry.services.jobs.batches import (
    job_batch_size,
    job_now,
    more_batches_allowed,
    pause_inside_batch,
)

DECIDED_DISPUTE_STATUSES = (DisputeStatus.UPHELD, DisputeStatus.REJECTED)
CASE_TEXT = {"reference": "", "subject_statement": ""}
DISPUTE_TEXT = {"statement": "", "response_statement": "", "rationale": ""}


def scrub_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=settings.REGISTRY_CLOSED_TEXT_SCRUB_DAYS)


def closed_text_scrub_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    now = job_now(now)
    cutoff = scrub_cutoff(now)
    size = job_batch_size(batch_size)
    tables = (
        (
            "case",
            Case.objects.filter(
                status__in=CLOSED_STATUSES,
                status_changed_at__lte=cutoff,
                text_scrubbed_at__isnull=True,
            ),
            CASE_TEXT,
        ),
        (
            "dispute",
            Dispute.objects.filter(
                status__in=DECIDED_DISPUTE_STATUSES,
                decided_at__lte=cutoff,
                text_scrubbed_at__isnull=True,
            ),
            DISPUTE_TEXT,
        ),
    )
    summary = {"closed_before": cutoff.isoformat(), "batches": 0, "scrubbed": {}}
    for table, due, blanks in tables:
        summary["scrubbed"][table] = 0
        while more_batches_allowed(summary["batches"], max_batches):
            count = _scrub_batch(table, due, blanks, now=now, cutoff=cutoff, batch_size=size)
            if not count:
                break
            summary["batches"] += 1
            summary["scrubbed"][table] += count
    return summary


@transaction.atomic
def _scrub_batch(table: str, due, blanks: dict, *, now, cutoff, batch_size: int) -> int:
    ids = list(
        due.order_by().select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    due.model.objects.filter(pk__in=ids).update(**blanks, text_scrubbed_at=now)
    audit_record(
        actor=Actor.system(),
        action=AuditAction.CLOSED_TEXT_SCRUBBED,
        object_type=table,
        details={"table": table, "rows": len(ids), "closed_before": cutoff.isoformat()},
    )
    pause_inside_batch()
    return len(ids)

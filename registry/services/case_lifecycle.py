"""The life cycle of a case, in one place: every change of a case's status goes through here.

    active   -> disputed              a member files a dispute (services/disputes.py)
    disputed -> active                the officer rejects the dispute: the case is restored
    disputed -> removed               the officer upholds the dispute
    active, disputed -> withdrawn     the reporting member withdraws it (services/cases.py, or
                                      its answer to a dispute); an undecided dispute is upheld
    active, disputed -> expired       its retention period ends (jobs/expiry.py, set-based)

Any other move is refused. A move that can change whether lookups see the case (and a
submission, and a dispute becoming overdue) queues the watch alerts' fan-out
(`case_alerts_enqueue`: services/alerts.py, through the outbox, after commit). A submission
and every closure also queue the update of the cases' rings (`case_rings_enqueue`:
services/rings.py). Leaving the
registry (withdrawn, removed, expired) deletes the case's identifier digests in the same
transaction: they are gone, not flagged. Changes run in the caller's transaction and record
their audit event there; callers lock the case row first (select_for_update), then its
dispute row, always in that order, so two writers never deadlock.

A dispute's decision is recorded here as well (`dispute_decision_record`): a withdrawal
decides the case's dispute, so the officer's decision and that one share one path.
"""

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import InvalidTransition
from registry.models import (
    UNDECIDED_DISPUTE_STATUSES,
    Case,
    CaseIdentifier,
    CaseStatus,
    Dispute,
    DisputeStatus,
)
from registry.services.audit import audit_record
from registry.services.outbox import outbox_enqueue

TASK_DECISION_NOTICE = "registry.disputes.send_decision_notice"
TASK_CASE_ALERTS = "registry.alerts.for_cases"
TASK_CASE_RINGS = "registry.rings.update_for_cases"

CASE_MOVES: dict[str, frozenset[str]] = {
    CaseStatus.ACTIVE: frozenset({CaseStatus.DISPUTED, CaseStatus.WITHDRAWN, CaseStatus.EXPIRED}),
    CaseStatus.DISPUTED: frozenset(
        {CaseStatus.ACTIVE, CaseStatus.REMOVED, CaseStatus.WITHDRAWN, CaseStatus.EXPIRED}
    ),
}
CLOSED_STATUSES = (CaseStatus.WITHDRAWN, CaseStatus.REMOVED, CaseStatus.EXPIRED)
# Moves after which lookups may see the case when they did not, or the reverse (filing a
# dispute does not hide a case; its deadline passing does: disputes.py queues that one).
VISIBILITY_MOVES = frozenset({CaseStatus.ACTIVE, *CLOSED_STATUSES})


def case_alerts_enqueue(case_ids) -> None:
    """Queue the alert fan-out of these cases, in the caller's transaction (published on
    commit). The task reconciles each case with its state when it runs, so queueing once per
    change, twice, or late is all the same to the watching members."""
    ids = [str(pk) for pk in case_ids]
    if ids:
        outbox_enqueue(TASK_CASE_ALERTS, case_ids=ids)


def case_rings_enqueue(case_ids) -> None:
    """Queue the update of these cases' rings (submitted, or closed: their digests are
    gone), in the caller's transaction. The task's service is idempotent."""
    ids = [str(pk) for pk in case_ids]
    if ids:
        outbox_enqueue(TASK_CASE_RINGS, case_ids=ids)


def case_may_move(case: Case, to: str) -> bool:
    return to in CASE_MOVES.get(case.status, ())


def case_move(
    *,
    actor: Actor | None = None,
    case: Case,
    to: str,
    action: AuditAction | None = None,
    details: dict | None = None,
    now: datetime | None = None,
    update_fields: tuple[str, ...] = (),
) -> int:
    """Move a (locked) case to status `to`; returns how many identifiers were purged. Records
    `action` when given (a filing has no event of its own: the dispute's tells it)."""
    if not case_may_move(case, to):
        raise ValueError(f"a case cannot move from {case.status} to {to}")
    purged = 0
    if to in CLOSED_STATUSES:
        purged, _per_model = CaseIdentifier.objects.filter(case=case).delete()
        details = {"status": to, "identifiers_purged": purged, **(details or {})}
        case_rings_enqueue([case.pk])
    case.status = to
    case.status_changed_at = now or timezone.now()
    case.save(update_fields=["status", "status_changed_at", *update_fields])
    if to in VISIBILITY_MOVES:
        case_alerts_enqueue([case.pk])
    if action is not None:
        audit_record(
            actor=actor, action=action, object_type="case", object_id=case.pk, details=details
        )
    return purged


def cases_expire(*, case_ids: list) -> int:
    """The expiry job's move, set-based: the (locked, live, due) cases become expired and
    their identifiers are deleted; returns how many. The job records one event per batch."""
    purged, _per_model = CaseIdentifier.objects.filter(case_id__in=case_ids).delete()
    Case.objects.filter(id__in=case_ids).update(
        status=CaseStatus.EXPIRED, status_changed_at=timezone.now()
    )
    case_alerts_enqueue(case_ids)
    case_rings_enqueue(case_ids)
    return purged


def expirable_cases() -> QuerySet:
    """Cases the expiry job may move (whether they are due is the job's question)."""
    return Case.objects.filter(
        status__in=[status for status, moves in CASE_MOVES.items() if CaseStatus.EXPIRED in moves]
    )


def case_withdraw_locked(
    *, actor: Actor, case: Case, reason: str, dispute: Dispute | None = None
) -> None:
    """The reporting member takes its (locked) case back: withdrawn, identifiers purged, and
    its undecided dispute (`dispute`, when the caller holds it locked) upheld, since the
    subject got what they asked for."""
    if not case_may_move(case, CaseStatus.WITHDRAWN):
        raise InvalidTransition(
            _("A case that is %(status)s cannot be withdrawn.") % {"status": case.status}
        )
    # The reason is the member's free text: like dispute statements, only its length goes
    # into the append-only audit trail.
    case_move(
        actor=actor,
        case=case,
        to=CaseStatus.WITHDRAWN,
        action=AuditAction.CASE_WITHDRAWN,
        details={"reason_length": len(reason)},
    )
    if dispute is None:
        dispute = (
            Dispute.objects.select_for_update()
            .filter(case=case, status__in=UNDECIDED_DISPUTE_STATUSES)
            .first()  # one at most (constraint one_undecided_dispute_per_case)
        )
    if dispute is not None:
        dispute.case = case
        dispute_decision_record(
            actor=actor,
            dispute=dispute,
            outcome=DisputeStatus.UPHELD,
            rationale=str(_("The reporting member withdrew the case.")),
            details={"case_status": case.status},
        )


def dispute_decision_record(
    *, actor: Actor, dispute: Dispute, outcome: str, rationale: str, details: dict
) -> None:
    """Decide a (locked, undecided) dispute, audit it and queue the decision notice. The
    case has already moved, if it was to. Rationales go into the audit trail as lengths."""
    dispute.status = outcome
    dispute.rationale = rationale
    dispute.decided_at = timezone.now()
    dispute.decided_by = actor.user if actor.is_officer else None
    dispute.save(update_fields=["status", "rationale", "decided_at", "decided_by"])
    audit_record(
        actor=actor,
        action=AuditAction.DISPUTE_DECIDED,
        object_type="dispute",
        object_id=dispute.pk,
        details={
            "case_id": str(dispute.case_id),
            "outcome": outcome,
            "rationale_length": len(rationale),
            **details,
        },
    )
    outbox_enqueue(TASK_DECISION_NOTICE, dispute_id=str(dispute.pk))

"""Disputes: a data subject contests a listing through any member; the reporting member
answers; a compliance officer decides. Undecided disputes past their deadline become overdue,
and their case drops out of lookups (selectors/cases.py) until an officer decides.

Transitions (anything else is 409 invalid_transition and changes nothing):
    open       -> responded               the reporting member maintains the case
    open, responded, overdue -> upheld    the officer upholds, or the member withdraws the case
    open, responded, overdue -> rejected  the officer rejects
    open, responded -> overdue            the deadline passes (read time; the sweep records it)

Every change locks the case row, then its dispute row (always in that order, so two writers
never deadlock), records its audit event in the same transaction, and sends mail only through
the outbox. Statements and rationales are never copied into audit details: lengths only.
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from registry_client.pii import looks_like_raw_identifier

from registry.actors import Actor
from registry.errors import (
    Conflict,
    FieldError,
    InvalidTransition,
    NotFound,
    RawPiiRejected,
    ValidationFailed,
)
from registry.models import (
    LIVE_CASE_STATUSES,
    UNDECIDED_DISPUTE_STATUSES,
    Case,
    CaseStatus,
    Dispute,
    DisputeStatus,
    Scope,
)
from registry.services.audit import audit_record
from registry.services.case_lifecycle import case_close
from registry.services.outbox import outbox_enqueue

TASK_FILED_NOTICE = "registry.disputes.send_filed_notice"
TASK_DECISION_NOTICE = "registry.disputes.send_decision_notice"
TASK_REMINDER = "registry.disputes.send_reminder"
TASK_OVERDUE_ALERT = "registry.disputes.send_overdue_alert"

# Statuses in which the deadline still runs (overdue is where it ends).
RUNNING_STATUSES = (DisputeStatus.OPEN, DisputeStatus.RESPONDED)


def dispute_effective_status(dispute: Dispute, *, now: datetime | None = None) -> str:
    """The status as of now: a running dispute past its deadline is overdue even before the
    sweep has recorded it."""
    now = now or timezone.now()
    if dispute.status in RUNNING_STATUSES and dispute.due_at <= now:
        return DisputeStatus.OVERDUE
    return dispute.status


def dispute_deadline(filed_at: datetime) -> datetime:
    return filed_at + timedelta(days=settings.REGISTRY_DISPUTE_DEADLINE_DAYS)


@transaction.atomic
def dispute_file(*, actor: Actor, case_id, reason: str, statement: str = "") -> Dispute:
    """Any member files on behalf of a data subject, about any live case (the case id comes
    from a lookup result). The case is `disputed` at once; one undecided dispute per case."""
    if not actor.is_member:
        raise NotFound(_("No such case."))
    if reason not in Dispute.Reason.values:
        raise ValidationFailed(_("Unknown dispute reason."))
    _screen(statement=statement)
    case = _lock_live_case(case_id)
    if case.status == CaseStatus.DISPUTED:
        raise Conflict(_("This case already has an undecided dispute."))
    now = timezone.now()
    dispute = Dispute(
        case=case,
        filed_by=actor.member,
        reason=reason,
        statement=statement,
        filed_at=now,
        due_at=dispute_deadline(now),
    )
    try:
        with transaction.atomic():  # savepoint: the constraint is the last line of defence
            dispute.save(force_insert=True)
    except IntegrityError:
        raise Conflict(_("This case already has an undecided dispute.")) from None
    _set_case_status(case, CaseStatus.DISPUTED, now)
    audit_record(
        actor=actor,
        action="dispute.filed",
        object_type="dispute",
        object_id=dispute.pk,
        details={
            "case_id": str(case.pk),
            "reason": reason,
            "statement_length": len(statement),
            "due_at": dispute.due_at.isoformat(),
        },
    )
    outbox_enqueue(TASK_FILED_NOTICE, dispute_id=str(dispute.pk))
    return dispute


@transaction.atomic
def dispute_respond(*, actor: Actor, dispute_id, position: str, statement: str = "") -> Dispute:
    """The reporting member's answer. `maintain` only while the dispute is open (before its
    deadline); `withdraw_case` at any time before a decision, since withdrawing a case is
    always the member's right and always in the subject's favour."""
    if position not in Dispute.Position.values:
        raise ValidationFailed(_("Unknown position."))
    _screen(statement=statement)
    dispute = _lock_dispute(dispute_id)
    if not actor.is_member or dispute.case.member_id != actor.member_id:
        raise NotFound(_("No such dispute."))
    status = dispute_effective_status(dispute)
    maintain = position == Dispute.Position.MAINTAIN
    allowed = (DisputeStatus.OPEN,) if maintain else UNDECIDED_DISPUTE_STATUSES
    if status not in allowed:
        raise InvalidTransition(
            _("A dispute that is %(status)s cannot take this response.") % {"status": status}
        )
    now = timezone.now()
    dispute.response_position = position
    dispute.response_statement = statement
    dispute.responded_at = now
    update = ["response_position", "response_statement", "responded_at"]
    if maintain:
        dispute.status = DisputeStatus.RESPONDED
        update.append("status")
    dispute.save(update_fields=update)
    audit_record(
        actor=actor,
        action="dispute.responded",
        object_type="dispute",
        object_id=dispute.pk,
        details={
            "case_id": str(dispute.case_id),
            "position": position,
            "statement_length": len(statement),
        },
    )
    if not maintain:
        _withdraw_disputed_case(actor=actor, dispute=dispute)
        dispute.refresh_from_db()
    return dispute


def _withdraw_disputed_case(*, actor: Actor, dispute: Dispute) -> None:
    """One code path for withdrawals: the cases service. Once it closes the case's disputes
    itself (dispute_close_for_closed_case), the second call below finds nothing to do."""
    from registry.services.cases import case_withdraw

    case_withdraw(
        actor=actor,
        case_id=dispute.case_id,
        reason=f"Withdrawn in response to dispute {dispute.pk}",
    )
    case = Case.objects.get(pk=dispute.case_id)
    dispute_close_for_closed_case(actor=actor, case=case)


@transaction.atomic
def dispute_decide(
    *, actor: Actor, dispute_id, outcome: str, rationale: str, subject_statement: str = ""
) -> Dispute:
    """The compliance officer's decision. `upheld`: the case is removed and its identifiers
    purged. `rejected`: the case is active again, with the subject's statement if given.
    A second (or concurrent) decision is 409 invalid_transition and changes nothing.
    Only an officer with the `compliance` scope decides (an auditor's key only reads)."""
    if not actor.is_officer or Scope.COMPLIANCE not in actor.scopes:
        raise NotFound(_("No such dispute."))
    if outcome not in (DisputeStatus.UPHELD, DisputeStatus.REJECTED):
        raise ValidationFailed(_("The outcome must be upheld or rejected."))
    if not rationale.strip():
        raise ValidationFailed(_("A decision needs a rationale."))
    if subject_statement and outcome != DisputeStatus.REJECTED:
        raise ValidationFailed(_("A subject's statement is attached only to a rejected dispute."))
    _screen(rationale=rationale, subject_statement=subject_statement)
    dispute = _lock_dispute(dispute_id)
    _check_undecided(dispute)
    case = dispute.case
    _record_decision(dispute, actor=actor, outcome=outcome, rationale=rationale)
    if case.status == CaseStatus.DISPUTED:  # an expired case stays expired
        _apply_outcome_to_case(
            actor=actor,
            case=case,
            dispute=dispute,
            outcome=outcome,
            subject_statement=subject_statement,
        )
    audit_record(
        actor=actor,
        action="dispute.decided",
        object_type="dispute",
        object_id=dispute.pk,
        details={
            "case_id": str(case.pk),
            "outcome": outcome,
            "rationale_length": len(rationale),
            "subject_statement_attached": bool(subject_statement),
        },
    )
    outbox_enqueue(TASK_DECISION_NOTICE, dispute_id=str(dispute.pk))
    return dispute


@transaction.atomic
def dispute_close_for_closed_case(
    *, actor: Actor, case: Case, rationale: str = "", outcome: str = DisputeStatus.UPHELD
) -> list[Dispute]:
    """Close the undecided dispute of a case that has just left the registry (the member
    withdrew it): the subject got what they asked for, so the dispute is upheld. Idempotent:
    a case without an undecided dispute is left alone. Call it in the closing transaction."""
    rationale = rationale or str(_("The reporting member withdrew the case."))
    closed = []
    disputes = Dispute.objects.select_for_update().filter(
        case=case, status__in=UNDECIDED_DISPUTE_STATUSES
    )
    for dispute in disputes:
        _record_decision(dispute, actor=actor, outcome=outcome, rationale=rationale)
        audit_record(
            actor=actor,
            action="dispute.decided",
            object_type="dispute",
            object_id=dispute.pk,
            details={
                "case_id": str(case.pk),
                "outcome": outcome,
                "case_status": case.status,
                "rationale_length": len(rationale),
            },
        )
        outbox_enqueue(TASK_DECISION_NOTICE, dispute_id=str(dispute.pk))
        closed.append(dispute)
    return closed


def dispute_deadlines_sweep(*, now: datetime | None = None) -> dict:
    """The deadline job (idempotent): record running disputes past due as overdue (audited),
    then ask for the overdue alerts and the reminders not sent yet. The mail tasks send each
    mail at most once (they stamp reminder_sent_at / overdue_alert_sent_at under a row lock),
    so asking again on the next run, before a task has run, costs nothing but a no-op."""
    now = now or timezone.now()
    flipped = _mark_overdue(now)
    alerts = _enqueue_each(
        TASK_OVERDUE_ALERT,
        Dispute.objects.filter(status=DisputeStatus.OVERDUE, overdue_alert_sent_at__isnull=True),
    )
    reminders = _enqueue_each(TASK_REMINDER, _reminder_due(now))
    return {"overdue": flipped, "alerts_enqueued": alerts, "reminders_enqueued": reminders}


def dispute_reminder_window_start(dispute: Dispute) -> datetime:
    return dispute.due_at - timedelta(days=settings.REGISTRY_DISPUTE_REMINDER_DAYS)


def _reminder_due(now: datetime):
    if settings.REGISTRY_DISPUTE_REMINDER_DAYS <= 0:
        return Dispute.objects.none()
    window = timedelta(days=settings.REGISTRY_DISPUTE_REMINDER_DAYS)
    # A case that expired meanwhile has nothing left to answer for: no reminder to its member
    # (the officers still see and decide the dispute; its overdue alert still goes to them).
    return Dispute.objects.filter(
        status__in=RUNNING_STATUSES,
        reminder_sent_at__isnull=True,
        due_at__gt=now,
        due_at__lte=now + window,
        case__status__in=LIVE_CASE_STATUSES,
    )


@transaction.atomic
def _mark_overdue(now: datetime) -> int:
    system = Actor.system()
    # skip_locked: a dispute being decided right now is the officer's, not the job's.
    due = (
        Dispute.objects.select_for_update(skip_locked=True)
        .filter(status__in=RUNNING_STATUSES, due_at__lte=now)
        .order_by("due_at")[: settings.REGISTRY_JOB_BATCH_SIZE]
    )
    count = 0
    for dispute in due:
        dispute.status = DisputeStatus.OVERDUE
        dispute.save(update_fields=["status"])
        audit_record(
            actor=system,
            action="dispute.overdue",
            object_type="dispute",
            object_id=dispute.pk,
            details={"case_id": str(dispute.case_id), "due_at": dispute.due_at.isoformat()},
        )
        count += 1
    return count


@transaction.atomic
def _enqueue_each(task: str, disputes) -> int:
    ids = list(
        disputes.order_by("due_at").values_list("pk", flat=True)[: settings.REGISTRY_JOB_BATCH_SIZE]
    )
    for dispute_id in ids:
        outbox_enqueue(task, dispute_id=str(dispute_id))
    return len(ids)


def _screen(**texts: str) -> None:
    """The API's fields screen these already; this guards the other callers (the admin's
    dispute desk), so that no path stores a raw identifier in a statement or rationale."""
    bad = [name for name, text in texts.items() if looks_like_raw_identifier(text or "")]
    if bad:
        raise RawPiiRejected(
            _("A field looks like a raw personal identifier; send tokens only."),
            [
                FieldError(f"/{name}", "raw_pii_rejected", _("Looks like a raw identifier."))
                for name in bad
            ],
        )


def _as_uuid(value, message: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(message) from None


def _lock_live_case(case_id) -> Case:
    """The case, locked, if a lookup could show it (or it is disputed: then 409, not 404)."""
    case = (
        Case.objects.select_for_update()
        .filter(
            pk=_as_uuid(case_id, _("No such case.")),
            status__in=LIVE_CASE_STATUSES,
            expires_at__gt=timezone.localdate(),
        )
        .first()
    )
    if case is None:
        raise NotFound(_("No such case."))
    return case


def _lock_dispute(dispute_id) -> Dispute:
    """The dispute and its case, both locked: the case first, as filing and withdrawal do,
    so that a decision racing a withdrawal waits instead of deadlocking."""
    dispute_id = _as_uuid(dispute_id, _("No such dispute."))
    case_id = Dispute.objects.filter(pk=dispute_id).values_list("case_id", flat=True).first()
    if case_id is None:
        raise NotFound(_("No such dispute."))
    case = Case.objects.select_for_update().get(pk=case_id)
    dispute = Dispute.objects.select_for_update().get(pk=dispute_id)
    dispute.case = case
    return dispute


def _check_undecided(dispute: Dispute) -> None:
    if dispute.status not in UNDECIDED_DISPUTE_STATUSES:
        raise InvalidTransition(
            _("This dispute was already decided (%(status)s).") % {"status": dispute.status}
        )


def _record_decision(dispute: Dispute, *, actor: Actor, outcome: str, rationale: str) -> None:
    dispute.status = outcome
    dispute.rationale = rationale
    dispute.decided_at = timezone.now()
    dispute.decided_by = actor.user if actor.is_officer else None
    dispute.save(update_fields=["status", "rationale", "decided_at", "decided_by"])


def _apply_outcome_to_case(
    *, actor: Actor, case: Case, dispute: Dispute, outcome: str, subject_statement: str
) -> None:
    if outcome == DisputeStatus.UPHELD:
        case_close(
            actor=actor,
            case=case,
            status=CaseStatus.REMOVED,
            action="case.removed",
            details={"dispute_id": str(dispute.pk)},
        )
        return
    if subject_statement:
        case.subject_statement = subject_statement
    _set_case_status(case, CaseStatus.ACTIVE, timezone.now(), extra=["subject_statement"])
    audit_record(
        actor=actor,
        action="case.restored",
        object_type="case",
        object_id=case.pk,
        details={"dispute_id": str(dispute.pk), "subject_statement": bool(case.subject_statement)},
    )


def _set_case_status(case: Case, status: str, now: datetime, extra=()) -> None:
    case.status = status
    case.status_changed_at = now
    case.save(update_fields=["status", "status_changed_at", *extra])

"""Disputes: a data subject contests a listing through any member, which proves it acts for
that person by sending one of the case's identifiers (a case id alone, as any lookup shows it,
is not enough: 422 identifier_not_on_case, the same answer as for an unknown case); each
member may file at most its dispute quota in any 24 hours (a burst past it is refused and
shown to the officers as a throttled member); the reporting member answers; a compliance
officer decides. Undecided disputes past their deadline become overdue, and their case drops
out of lookups (selectors/cases.py) until an officer decides.

Transitions (anything else is 409 invalid_transition and changes nothing):
    open       -> responded               the reporting member maintains the case
    open, responded, overdue -> upheld    the officer upholds, or the member withdraws the case
    open, responded, overdue -> rejected  the officer rejects
    open, responded -> overdue            the deadline passes (read time; the sweep records it)

Every change locks the case row, then its dispute row (always in that order, so two writers
never deadlock; filing locks the filing member's row before the case, for its quota, and
nothing locks a member row after a case row), records its audit event in the same
transaction, and sends mail only through the outbox. Statements and rationales are never
copied into audit details: lengths only. What a dispute does to its case (disputed, restored,
removed, withdrawn) and the recording of a decision are the case life cycle's
(services/case_lifecycle.py).
"""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from registry_client.pii import looks_like_raw_identifier

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import (
    Conflict,
    FieldError,
    IdentifierNotOnCase,
    InvalidTransition,
    NotFound,
    RateLimited,
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
    IdentifierKind,
    Member,
    Scope,
)
from registry.selectors.cases import case_carries_identifier
from registry.selectors.disputes import RUNNING_STATUSES, dispute_effective_status
from registry.services.abuse import rate_limit_exceeded_record
from registry.services.audit import audit_record
from registry.services.case_lifecycle import (
    case_alerts_enqueue,
    case_move,
    case_withdraw_locked,
    dispute_decision_record,
)
from registry.services.outbox import outbox_enqueue
from registry.tokens import is_token

TASK_FILED_NOTICE = "registry.disputes.send_filed_notice"
TASK_REMINDER = "registry.disputes.send_reminder"
TASK_OVERDUE_ALERT = "registry.disputes.send_overdue_alert"

# The dispute quota counts the disputes a member filed in the last QUOTA_WINDOW; a refusal
# is recorded like a rate-limit refusal (scope `dispute`, this quota name) for the officers.
QUOTA_WINDOW = timedelta(hours=24)
QUOTA_NAME = "disputes_filed"


def dispute_deadline(filed_at: datetime) -> datetime:
    return filed_at + timedelta(days=settings.REGISTRY_DISPUTE_DEADLINE_DAYS)


def dispute_file(
    *, actor: Actor, case_id, identifier: tuple[str, str], reason: str, statement: str = ""
) -> Dispute:
    """Any member files on behalf of a data subject, about a live case carrying the subject's
    identifier `(kind, token)`: holding it is the member's proof that it acts for that person
    (a case id seen in a lookup answer is not enough). The case is `disputed` at once; one
    undecided dispute per case; at most the member's dispute quota in any 24 hours."""
    if not actor.is_member:
        raise NotFound(_("No such case."))
    if reason not in Dispute.Reason.values:
        raise ValidationFailed(_("Unknown dispute reason."))
    _screen(statement=statement)
    _check_identifier_shape(identifier)
    try:
        return _file(
            actor=actor, case_id=case_id, identifier=identifier, reason=reason, statement=statement
        )
    except DisputeQuotaExceeded as exc:
        # After the rollback, in a transaction of its own: the officers must see the burst.
        rate_limit_exceeded_record(
            actor=actor, scope=Scope.DISPUTE, limit=exc.limit, window="day", quota=QUOTA_NAME
        )
        raise


@transaction.atomic
def _file(*, actor: Actor, case_id, identifier: tuple[str, str], reason: str, statement: str):
    now = timezone.now()
    _check_quota(actor, now)
    case = _lock_live_case(case_id)
    kind, token = identifier
    if case is None or not case_carries_identifier(case_id=case.pk, kind=kind, token=token):
        raise _not_on_case()
    if case.status == CaseStatus.DISPUTED:
        raise Conflict(_("This case already has an undecided dispute."))
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
    case_move(case=case, to=CaseStatus.DISPUTED, now=now)
    audit_record(
        actor=actor,
        action=AuditAction.DISPUTE_FILED,
        object_type="dispute",
        object_id=dispute.pk,
        details={
            # The identifier's kind only: a fingerprint in the permanent trail would link the
            # person to the case after the case is gone.
            "case_id": str(case.pk),
            "identifier_kind": kind,
            "reason": reason,
            "statement_length": len(statement),
            "due_at": dispute.due_at.isoformat(),
        },
    )
    outbox_enqueue(TASK_FILED_NOTICE, dispute_id=str(dispute.pk))
    return dispute


class DisputeQuotaExceeded(RateLimited):
    limit: int = 0


def dispute_quota(member: Member) -> int:
    """Disputes `member` may file in any 24 hours."""
    if member.dispute_quota_per_day is not None:
        return member.dispute_quota_per_day
    return settings.REGISTRY_DISPUTE_QUOTA_PER_DAY


def _check_quota(actor: Actor, now: datetime) -> None:
    """Counted from the disputes themselves, under a lock of the member's row, so that
    concurrent filings of one member are counted one after the other (the cache-based rate
    limiter fails open; this must not)."""
    member = Member.objects.select_for_update().get(pk=actor.member_id)
    limit = dispute_quota(member)
    window_start = now - QUOTA_WINDOW
    recent = Dispute.objects.filter(filed_by=member, filed_at__gt=window_start)
    if recent.count() < limit:
        return
    oldest = recent.order_by("filed_at").values_list("filed_at", flat=True).first()
    exc = DisputeQuotaExceeded(
        _("The member's dispute quota of %(n)d per 24 hours is used up.") % {"n": limit}
    )
    exc.limit = limit
    exc.retry_after = max(1, int(((oldest or now) + QUOTA_WINDOW - now).total_seconds()) + 1)
    raise exc


def _check_identifier_shape(identifier) -> None:
    """The API's serializer checks first; this guards other callers."""
    kind, token = identifier if isinstance(identifier, tuple | list) else (None, None)
    if kind not in IdentifierKind.values or not is_token(token):
        raise ValidationFailed(
            _("The identifier has an unknown kind or a bad token."),
            [FieldError("/identifier", "invalid_identifier", _("Unknown kind or bad token."))],
        )


def _not_on_case() -> IdentifierNotOnCase:
    return IdentifierNotOnCase(
        _("The identifier is not one of this case's, or no such case is in the registry."),
        [FieldError("/identifier", "identifier_not_on_case", _("Not an identifier of the case."))],
    )


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
        action=AuditAction.DISPUTE_RESPONDED,
        object_type="dispute",
        object_id=dispute.pk,
        details={
            "case_id": str(dispute.case_id),
            "position": position,
            "statement_length": len(statement),
        },
    )
    if not maintain:  # the one path of withdrawals, which upholds this dispute
        case_withdraw_locked(
            actor=actor,
            case=dispute.case,
            reason=f"Withdrawn in response to dispute {dispute.pk}",
            dispute=dispute,
        )
    return dispute


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
    if dispute.case.status == CaseStatus.DISPUTED:  # an expired case stays expired
        _apply_outcome_to_case(
            actor=actor,
            case=dispute.case,
            dispute=dispute,
            outcome=outcome,
            subject_statement=subject_statement,
        )
    dispute_decision_record(
        actor=actor,
        dispute=dispute,
        outcome=outcome,
        rationale=rationale,
        details={"subject_statement_attached": bool(subject_statement)},
    )
    return dispute


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
    cases = []
    for dispute in due:
        dispute.status = DisputeStatus.OVERDUE
        dispute.save(update_fields=["status"])
        audit_record(
            actor=system,
            action=AuditAction.DISPUTE_OVERDUE,
            object_type="dispute",
            object_id=dispute.pk,
            details={"case_id": str(dispute.case_id), "due_at": dispute.due_at.isoformat()},
        )
        cases.append(dispute.case_id)
        count += 1
    # Overdue: the case has left lookups (watching members get case.cleared).
    case_alerts_enqueue(cases)
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


def _lock_live_case(case_id) -> Case | None:
    """The case, locked, if a lookup could show it or it is disputed; else None."""
    try:
        case_id = _as_uuid(case_id, "")
    except NotFound:
        return None
    return (
        Case.objects.select_for_update()
        .filter(pk=case_id, status__in=LIVE_CASE_STATUSES, expires_at__gt=timezone.localdate())
        .first()
    )


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


def _apply_outcome_to_case(
    *, actor: Actor, case: Case, dispute: Dispute, outcome: str, subject_statement: str
) -> None:
    if outcome == DisputeStatus.UPHELD:
        case_move(
            actor=actor,
            case=case,
            to=CaseStatus.REMOVED,
            action=AuditAction.CASE_REMOVED,
            details={"dispute_id": str(dispute.pk)},
        )
        return
    if subject_statement:
        case.subject_statement = subject_statement
    case_move(
        actor=actor,
        case=case,
        to=CaseStatus.ACTIVE,
        action=AuditAction.CASE_RESTORED,
        details={"dispute_id": str(dispute.pk), "subject_statement": bool(case.subject_statement)},
        update_fields=("subject_statement",),
    )

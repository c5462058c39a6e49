"""Reads of disputes. A member sees the disputes it filed and those about its own cases,
nothing else; an officer sees all. Every read is audited."""

import uuid
from datetime import datetime

from django.db import models
from django.db.models import F, Q, Value
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import NotFound
from registry.models import Dispute, DisputeStatus
from registry.services.audit import audit_record

# Statuses in which the deadline still runs (overdue is where it ends).
RUNNING_STATUSES = (DisputeStatus.OPEN, DisputeStatus.RESPONDED)


def dispute_effective_status(dispute: Dispute, *, now: datetime | None = None) -> str:
    """The status as of now: a running dispute past its deadline is overdue even before the
    sweep has recorded it."""
    now = now or timezone.now()
    if dispute.status in RUNNING_STATUSES and dispute.due_at <= now:
        return DisputeStatus.OVERDUE
    return dispute.status


def disputes_visible_to(*, actor: Actor):
    """The disputes `actor` may see, each annotated with `effective_status`: a running
    dispute past its deadline reads as overdue even before the sweep has recorded it."""
    disputes = Dispute.objects.select_related("case", "case__member", "filed_by")
    if not actor.is_officer:
        disputes = disputes.filter(
            Q(filed_by_id=actor.member_id) | Q(case__member_id=actor.member_id)
        )
    return disputes.annotate(
        effective_status=models.Case(
            models.When(
                status__in=RUNNING_STATUSES,
                due_at__lte=timezone.now(),
                then=Value(DisputeStatus.OVERDUE),
            ),
            default=F("status"),
            output_field=models.CharField(),
        )
    )


def dispute_list(*, actor: Actor, status: str = "", case_id=None):
    """Audited read: newest first; the caller paginates."""
    disputes = disputes_visible_to(actor=actor)
    if status:
        disputes = disputes.filter(effective_status=status)
    if case_id:
        disputes = disputes.filter(case_id=case_id)
    audit_record(
        actor=actor,
        action=AuditAction.DISPUTE_LISTED,
        object_type="dispute",
        details={"status": status, "case_id": str(case_id or "")},
    )
    return disputes.order_by("-filed_at", "-pk")


def dispute_get(*, actor: Actor, dispute_id) -> Dispute:
    """Audited read: one dispute `actor` may see; any other is NotFound."""
    try:
        dispute_id = uuid.UUID(str(dispute_id))
    except ValueError:
        raise NotFound(_("No such dispute.")) from None
    dispute = disputes_visible_to(actor=actor).filter(pk=dispute_id).first()
    if dispute is None:
        raise NotFound(_("No such dispute."))
    audit_record(
        actor=actor, action=AuditAction.DISPUTE_VIEWED, object_type="dispute", object_id=dispute.pk
    )
    return dispute

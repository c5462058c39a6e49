"""Reads of cases, always scoped to the caller."""

from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import NotFound
from registry.models import (
    UNDECIDED_DISPUTE_STATUSES,
    Case,
    CaseIdentifier,
    CaseStatus,
    Dispute,
    DisputeStatus,
)
from registry.services.audit import audit_record
from registry.tokens import digest_layers


def overdue_dispute_exists():
    """An undecided dispute of the case whose deadline has passed, at this very moment
    (whether or not the deadline job has flipped its status yet)."""
    now = timezone.now()
    return Exists(
        Dispute.objects.filter(
            case=OuterRef("pk"),
            status__in=UNDECIDED_DISPUTE_STATUSES,
        ).filter(Q(status=DisputeStatus.OVERDUE) | Q(due_at__lte=now))
    )


def matchable_cases_q() -> Q:
    """Cases a lookup may return: active, or disputed with no overdue dispute, and not past
    their expiry date — at the moment of the lookup, whatever the jobs have done yet."""
    today = timezone.localdate()
    return (
        Q(status=CaseStatus.ACTIVE) | (Q(status=CaseStatus.DISPUTED) & ~Q(overdue_dispute_exists()))
    ) & Q(expires_at__gt=today)


def cases_of_member(*, actor: Actor, status: str = "", category: str = "", reference: str = ""):
    """Audited read: the caller's own cases, newest first, with their identifiers. Filters
    are exact. The read is audited (the spec audits every call that reads registry data)."""
    cases = (
        Case.objects.filter(member_id=actor.member_id if actor.is_member else None)
        .prefetch_related(
            Prefetch(
                "identifiers",
                queryset=CaseIdentifier.objects.only("case_id", "kind", "fingerprint"),
            )
        )
        .order_by("-created_at", "-pk")
    )
    filters = {"status": status, "category_id": category, "reference": reference}
    cases = cases.filter(**{name: value for name, value in filters.items() if value})
    audit_record(
        actor=actor,
        action=AuditAction.CASE_LISTED,
        object_type="case",
        details={"filters": sorted(name for name, value in filters.items() if value)},
    )
    return cases


def case_of_member(*, actor: Actor, case_id) -> Case:
    """Audited read: one of the caller's own cases; anyone else's is NotFound, exactly like
    a missing one."""
    case = (
        Case.objects.filter(pk=case_id, member_id=actor.member_id if actor.is_member else None)
        .prefetch_related("identifiers")
        .first()
    )
    if case is None:
        raise NotFound(_("No such case."))
    audit_record(actor=actor, action=AuditAction.CASE_VIEWED, object_type="case", object_id=case.pk)
    return case


def case_carries_identifier(*, case_id, kind: str, token: str) -> bool:
    """Whether the case holds this identifier. The token is digested exactly as for a lookup,
    at every configured pepper version (a row keeps its version until the rotation job
    re-keys it), and each digest is compared only with rows of its own version."""
    matches = Q()
    for version, digest in enumerate(digest_layers(token), start=1):
        matches |= Q(digest=digest, pepper_version=version)
    return CaseIdentifier.objects.filter(matches, case_id=case_id, kind=kind).exists()

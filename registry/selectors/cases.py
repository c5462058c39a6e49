"""Reads of cases, always scoped to the caller."""

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from registry.models import CaseStatus, Dispute, DisputeStatus


def overdue_dispute_exists():
    """An undecided dispute of the case whose deadline has passed, at this very moment
    (whether or not the deadline job has flipped its status yet)."""
    now = timezone.now()
    return Exists(
        Dispute.objects.filter(
            case=OuterRef("pk"),
            status__in=[DisputeStatus.OPEN, DisputeStatus.RESPONDED, DisputeStatus.OVERDUE],
        ).filter(Q(status=DisputeStatus.OVERDUE) | Q(due_at__lte=now))
    )


def matchable_cases_q() -> Q:
    """Cases a lookup may return: active, or disputed with no overdue dispute, and not past
    their expiry date — at the moment of the lookup, whatever the jobs have done yet."""
    today = timezone.localdate()
    return (
        Q(status=CaseStatus.ACTIVE)
        | (Q(status=CaseStatus.DISPUTED) & ~Q(overdue_dispute_exists()))
    ) & Q(expires_at__gt=today)

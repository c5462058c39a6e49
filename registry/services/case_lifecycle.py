"""The one way a case leaves the registry: its status changes and its identifier digests are
deleted in the same transaction, with an audit event. Withdrawal (member), removal (upheld
dispute) and expiry (job) all go through here."""

from django.db import transaction
from django.utils import timezone

from registry.actors import Actor
from registry.models import Case, CaseIdentifier, CaseStatus
from registry.services.audit import audit_record

CLOSED_STATUSES = (CaseStatus.WITHDRAWN, CaseStatus.REMOVED, CaseStatus.EXPIRED)


@transaction.atomic
def case_close(*, actor: Actor, case: Case, status: str, action: str, details=None) -> int:
    """Close a (locked, live) case and purge its identifiers. Returns how many were purged.
    Callers lock the case row first (select_for_update) and check the transition."""
    assert status in CLOSED_STATUSES
    purged, _ = CaseIdentifier.objects.filter(case=case).delete()
    case.status = status
    case.status_changed_at = timezone.now()
    case.save(update_fields=["status", "status_changed_at"])
    audit_record(
        actor=actor,
        action=action,
        object_type="case",
        object_id=case.pk,
        details={"status": status, "identifiers_purged": purged, **(details or {})},
    )
    return purged

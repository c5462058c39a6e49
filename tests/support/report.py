"""Data for the regulator's monthly report tests, written with the ORM at chosen times (the
API stamps the present): times on the regulator's calendar, cases created and closed when
said, and audit events recorded in the past (inserted, as the trail only ever is)."""

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from registry.models import AuditEvent, Case, CaseStatus
from registry.services.audit import audit_build

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(*parts) -> datetime:
    """A time on the regulator's calendar (Asia/Shanghai): sh(2026, 11, 30, 23, 59)."""
    return datetime(*parts, tzinfo=SHANGHAI)


def case_at(member, category: str, created, status=CaseStatus.ACTIVE, closed=None) -> Case:
    """A case of `member` created at `created` and, if `closed`, given `status` then."""
    case = Case.objects.create(
        member=member,
        reference=f"R-{uuid.uuid4().hex[:12]}",
        category_id=category,
        status=status,
        confirmed_at=date(2026, 1, 1),
        expires_at=date(2031, 1, 1),
    )
    Case.objects.filter(pk=case.pk).update(created_at=created, status_changed_at=closed or created)
    return case


def past_event(actor, action, at, object_type="", object_id="", details=None) -> AuditEvent:
    """An audit event recorded at `at`."""
    event = audit_build(
        actor=actor, action=action, object_type=object_type, object_id=object_id, details=details
    )
    event.created_at = at
    event.save(force_insert=True)
    return event

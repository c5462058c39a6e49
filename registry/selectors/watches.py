"""Reads of watches and alerts, always scoped to the calling member."""

import base64
import binascii
import uuid

from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import FieldError, ValidationFailed
from registry.models import Alert, Watch, WebhookEndpoint
from registry.services.audit import audit_record

MAX_ALERTS_PER_PAGE = 500

# Alerts whose inserting transaction is older than every transaction still running: no alert
# can commit later with a smaller (tx, id), so a cursor past them never skips one. (The
# caller's own transaction, in tests, is let through.)
_SETTLED = Q(tx__lt=RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", [])) | Q(
    tx=RawSQL("txid_current_if_assigned()", [])
)


def watches_of_member(*, actor: Actor, label: str = ""):
    """Audited read: the caller's own live watches (an expired one is gone from here at once,
    before the daily job deletes it), newest first; `label` filters exactly."""
    watches = Watch.objects.filter(
        member_id=actor.member_id if actor.is_member else None,
        expires_on__gte=timezone.localdate(),
    )
    if label:
        watches = watches.filter(label=label)
    audit_record(
        actor=actor,
        action=AuditAction.WATCH_LISTED,
        object_type="watch",
        details={"filters": ["label"] if label else []},
    )
    return watches.only("id", "kind", "fingerprint", "label", "expires_on", "created_at")


def alert_cursor(alert: Alert) -> str:
    return base64.urlsafe_b64encode(f"{alert.tx}:{alert.pk}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tx, pk = text.split(":", 1)
        return int(tx), uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            _("Invalid cursor: use a cursor the API gave you."),
            [FieldError("/after", "invalid_cursor", _("Invalid cursor."))],
        ) from None


def alerts_of_member(*, actor: Actor, after: str = "", limit: int = 100) -> list[Alert]:
    """The caller's alerts after `after` (a cursor from an earlier answer), oldest first.
    Audited when it returns any (an empty poll reads nothing)."""
    alerts = Alert.objects.filter(member_id=actor.member_id if actor.is_member else None)
    if after:
        tx, pk = _parse_cursor(after)
        alerts = alerts.filter(Q(tx__gt=tx) | Q(tx=tx, id__gt=pk))
    page = list(alerts.filter(_SETTLED).order_by("tx", "id")[: min(limit, MAX_ALERTS_PER_PAGE)])
    if page:
        audit_record(
            actor=actor,
            action=AuditAction.ALERT_LISTED,
            object_type="alert",
            details={"alerts": len(page)},
        )
    return page


def alert_body(alert: Alert) -> dict:
    """The alert as members see it, in the pull API and in webhook deliveries alike."""
    return {
        "id": str(alert.pk),
        "type": alert.type,
        "created_at": timezone.localtime(alert.created_at).isoformat(),
        "watch": {
            "id": str(alert.watch_id),
            "label": alert.label,
            "kind": alert.kind,
            "fingerprint": alert.fingerprint,
        },
        "case": alert.case,
        "velocity": alert.velocity,
    }


def webhook_endpoints_of_member(*, actor: Actor) -> list[WebhookEndpoint]:
    """Audited read: the caller's webhook endpoints, newest first."""
    endpoints = list(
        WebhookEndpoint.objects.filter(
            member_id=actor.member_id if actor.is_member else None
        ).order_by("-created_at")
    )
    audit_record(
        actor=actor, action=AuditAction.WEBHOOK_ENDPOINT_LISTED, object_type="webhook_endpoint"
    )
    return endpoints

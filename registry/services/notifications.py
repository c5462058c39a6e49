"""Dispute e-mails: a notice when a dispute is filed and when it is decided, a reminder before
the deadline and an alert when it has passed. Run by Celery tasks (tasks/notifications.py)
that the outbox publishes after commit.

Each mail goes out at most once: the sender locks the dispute row, checks the mark (the
reminder_sent_at / overdue_alert_sent_at stamps, or the audit event of an earlier notice),
sends, and marks in the same transaction. A task published twice, or run concurrently, finds
the mark and does nothing. If sending fails the transaction rolls back and the task raises:
its outbox row stays not done, and the outbox sweep publishes it again later (as it does for a
task whose worker died; registry/services/outbox.py).

One message per recipient, so that no member learns another member's address, and no mail
names a member, a statement or an identifier: ids, status and dates only.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, Dispute, DisputeStatus
from registry.selectors.disputes import RUNNING_STATUSES, dispute_effective_status
from registry.services.audit import audit_record
from registry.services.disputes import dispute_reminder_window_start
from registry.services.members import OFFICERS_GROUP


def officer_emails() -> list[str]:
    """REGISTRY_OFFICER_EMAILS plus every active officer user with an address."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=OFFICERS_GROUP)
        .exclude(email="")
    )
    return _unique([*settings.REGISTRY_OFFICER_EMAILS, *users.values_list("email", flat=True)])


def _unique(addresses) -> list[str]:
    seen = {}
    for address in addresses:
        address = (address or "").strip()
        if address:
            seen.setdefault(address.lower(), address)
    return sorted(seen.values())


def _reporting_member_and_officers(dispute: Dispute) -> list[str]:
    return _unique([dispute.case.member.contact_email, *officer_emails()])


def _members_concerned(dispute: Dispute) -> list[str]:
    return _unique([dispute.filed_by.contact_email, dispute.case.member.contact_email])


@transaction.atomic
def dispute_reminder_send(*, dispute_id) -> int:
    """The deadline is near and no decision yet: remind the reporting member and the officers.
    Returns how many messages were sent (0 when there is nothing, or nothing more, to do)."""
    dispute = _lock(dispute_id)
    now = timezone.now()
    if (
        dispute is None
        or dispute.reminder_sent_at is not None
        or dispute_effective_status(dispute, now=now) not in RUNNING_STATUSES
        or now < dispute_reminder_window_start(dispute)
    ):
        return 0
    sent = _send(
        dispute,
        "reminder",
        _reporting_member_and_officers(dispute),
        _("Dispute %(id)s: decision due soon"),
    )
    dispute.reminder_sent_at = now
    dispute.save(update_fields=["reminder_sent_at"])
    _audit_sent(dispute, AuditAction.DISPUTE_REMINDER_SENT, sent)
    return sent


@transaction.atomic
def dispute_overdue_alert_send(*, dispute_id) -> int:
    """The deadline passed without a decision: the case is out of lookups until decided."""
    dispute = _lock(dispute_id)
    if (
        dispute is None
        or dispute.overdue_alert_sent_at is not None
        or dispute.status != DisputeStatus.OVERDUE
    ):
        return 0
    sent = _send(
        dispute, "overdue", _reporting_member_and_officers(dispute), _("Dispute %(id)s is overdue")
    )
    dispute.overdue_alert_sent_at = timezone.now()
    dispute.save(update_fields=["overdue_alert_sent_at"])
    _audit_sent(dispute, AuditAction.DISPUTE_OVERDUE_ALERT_SENT, sent)
    return sent


@transaction.atomic
def dispute_filed_notice_send(*, dispute_id) -> int:
    """Tell the reporting member (who must answer) and the officers (who decide)."""
    dispute = _lock(dispute_id)
    if dispute is None or _already(dispute, AuditAction.DISPUTE_FILED_NOTICE_SENT):
        return 0
    sent = _send(
        dispute,
        "filed",
        _reporting_member_and_officers(dispute),
        _("Dispute %(id)s filed"),
    )
    _audit_sent(dispute, AuditAction.DISPUTE_FILED_NOTICE_SENT, sent)
    return sent


@transaction.atomic
def dispute_decision_notice_send(*, dispute_id) -> int:
    """Tell both members concerned how the dispute ended: the filer answers the subject."""
    dispute = _lock(dispute_id)
    if (
        dispute is None
        or dispute.status not in (DisputeStatus.UPHELD, DisputeStatus.REJECTED)
        or _already(dispute, AuditAction.DISPUTE_DECISION_NOTICE_SENT)
    ):
        return 0
    sent = _send(dispute, "decided", _members_concerned(dispute), _("Dispute %(id)s decided"))
    _audit_sent(dispute, AuditAction.DISPUTE_DECISION_NOTICE_SENT, sent)
    return sent


def _lock(dispute_id) -> Dispute | None:
    return (
        Dispute.objects.select_for_update(of=("self",))
        .select_related("case__member", "filed_by")
        .filter(pk=dispute_id)
        .first()
    )


def _already(dispute: Dispute, action: AuditAction) -> bool:
    return AuditEvent.objects.filter(
        action=action, object_type="dispute", object_id=str(dispute.pk)
    ).exists()


def _send(dispute: Dispute, template: str, recipients: list[str], subject: str) -> int:
    with translation.override(settings.LANGUAGE_CODE):
        context = {
            "dispute": dispute,
            "status": DisputeStatus(dispute_effective_status(dispute)).label,
            "reason": dispute.get_reason_display(),
        }
        body = render_to_string(f"registry/email/dispute_{template}.txt", context)
        subject = str(subject) % {"id": dispute.pk}
    if not recipients:
        return 0
    connection = get_connection()
    messages = [
        EmailMessage(subject, body, to=[address], connection=connection) for address in recipients
    ]
    return connection.send_messages(messages) or 0


def _audit_sent(dispute: Dispute, action: AuditAction, sent: int) -> None:
    audit_record(
        actor=Actor.system(),
        action=action,
        object_type="dispute",
        object_id=dispute.pk,
        details={"messages": sent},
    )

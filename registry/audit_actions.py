"""Every kind of audit event the registry records, in one place (as Zulip's AuditLogEventType).

Write `audit_record(action=AuditAction.CASE_SUBMITTED, ...)`, never a free string: the admin's
action filter, the exports and the translations all read this list. Values are stored in
`AuditEvent.action` and are part of the sealed history, so a value never changes once
released; add a new member instead. Labels are what an officer reads.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    # Members, officers and their keys
    MEMBER_CREATED = "member.created", _("Member created")
    MEMBER_UPDATED = "member.updated", _("Member updated")
    MEMBER_SUSPENDED = "member.suspended", _("Member suspended")
    MEMBER_ACTIVE = "member.active", _("Member reinstated")
    MEMBER_LIMIT_SET = "member.limit_set", _("Member limit set")
    OFFICER_CREATED = "officer.created", _("Officer created")
    OFFICER_TOTP_CREATED = "officer.totp_created", _("Officer authenticator enrolled")
    API_KEY_ISSUED = "api_key.issued", _("API key issued")
    API_KEY_REVOKED = "api_key.revoked", _("API key revoked")
    CATEGORY_RETENTION_CHANGED = "category.retention_changed", _("Category retention changed")

    # Cases and lookups
    CASE_SUBMITTED = "case.submitted", _("Case submitted")
    CASE_WITHDRAWN = "case.withdrawn", _("Case withdrawn")
    CASE_REMOVED = "case.removed", _("Case removed")
    CASE_RESTORED = "case.restored", _("Case restored")
    CASE_LISTED = "case.listed", _("Cases listed")
    CASE_VIEWED = "case.viewed", _("Case viewed")
    CASES_EXPIRED = "cases.expired", _("Cases expired")
    LOOKUP_PERFORMED = "lookup.performed", _("Lookup performed")
    OPRF_EVALUATED = "oprf.evaluated", _("Tokens evaluated")
    IDEMPOTENCY_REPLAYED = "idempotency.replayed", _("Request replayed")
    RATE_LIMIT_EXCEEDED = "rate_limit.exceeded", _("Rate limit exceeded")
    USAGE_SIGNAL_ALERT = "member.usage_signal", _("Usage far from the member's usual")

    # Monitoring: watches, alerts, webhooks
    WATCH_CREATED = "watch.created", _("Watch created")
    WATCH_EXTENDED = "watch.extended", _("Watch extended")
    WATCH_DELETED = "watch.deleted", _("Watch deleted")
    WATCH_LISTED = "watch.listed", _("Watches listed")
    WATCHES_EXPIRED = "watches.expired", _("Expired watches deleted")
    ALERT_LISTED = "alert.listed", _("Alerts pulled")
    ALERTS_PURGED = "alerts.purged", _("Old alerts deleted")
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created", _("Webhook endpoint created")
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted", _("Webhook endpoint deleted")
    WEBHOOK_ENDPOINT_LISTED = "webhook_endpoint.listed", _("Webhook endpoints listed")
    WEBHOOK_ENDPOINT_TESTED = "webhook_endpoint.tested", _("Webhook test event sent")
    WEBHOOK_ENDPOINT_FAILING = "webhook_endpoint.failing", _("Webhook endpoint failing")

    # Disputes
    DISPUTE_FILED = "dispute.filed", _("Dispute filed")
    DISPUTE_RESPONDED = "dispute.responded", _("Dispute responded")
    DISPUTE_DECIDED = "dispute.decided", _("Dispute decided")
    DISPUTE_OVERDUE = "dispute.overdue", _("Dispute overdue")
    DISPUTE_LISTED = "dispute.listed", _("Disputes listed")
    DISPUTE_VIEWED = "dispute.viewed", _("Dispute viewed")
    DISPUTE_FILED_NOTICE_SENT = "dispute.filed_notice_sent", _("Dispute notice sent")
    DISPUTE_DECISION_NOTICE_SENT = "dispute.decision_notice_sent", _("Decision notice sent")
    DISPUTE_REMINDER_SENT = "dispute.reminder_sent", _("Dispute reminder sent")
    DISPUTE_OVERDUE_ALERT_SENT = "dispute.overdue_alert_sent", _("Overdue alert sent")

    # Compliance, audit and housekeeping
    SUBJECT_ACCESS = "compliance.subject_access", _("Subject access request")
    AUDIT_VERIFIED = "audit.verified", _("Audit trail verified")
    AUDIT_EXPORTED = "audit.exported", _("Audit trail exported")
    AUDIT_CHECKPOINTED = "audit.checkpointed", _("Audit chain checkpoint signed")
    REPORT_GENERATED = "report.generated", _("Regulator's monthly report generated")
    AUDIT_ARCHIVED = "audit.archived", _("Audit month archived")
    ADMIN_CASE_VIEWED = "admin.case_viewed", _("Case opened in the admin")
    ADMIN_CASES_SEARCHED = "admin.cases_searched", _("Cases searched in the admin")
    ADMIN_AUDIT_BROWSED = "admin.audit_browsed", _("Audit trail browsed in the admin")
    ADMIN_AUDIT_EVENT_VIEWED = "admin.auditevent_viewed", _("Audit event opened in the admin")
    ADMIN_RING_VIEWED = "admin.ring_viewed", _("Ring opened in the admin")
    OFFICER_SIGNED_IN = "officer.signed_in", _("Officer signed in")
    OFFICER_CODE_REFUSED = "officer.code_refused", _("Officer's authenticator code refused")
    PEPPER_ROTATED = "pepper.rotated", _("Pepper rotation batch")
    PEPPER_ROTATION_COMPLETED = "pepper.rotation_completed", _("Pepper rotation completed")
    LOOKUP_LOG_PURGED = "lookup_log.purged", _("Lookup log purged")
    PARTITION_CREATED = "partition.created", _("Monthly partition created")
    PARTITION_DROPPED = "partition.dropped", _("Monthly partition dropped past retention")
    AUDIT_MONTH_DROPPED = "audit.month_dropped", _("Archived audit month dropped")
    IDEMPOTENCY_KEYS_PURGED = "idempotency_keys.purged", _("Idempotency keys purged")
    CLOSED_TEXT_SCRUBBED = "closed_text.scrubbed", _("Text of closed cases and disputes scrubbed")

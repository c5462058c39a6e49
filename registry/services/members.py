"""Members, their limits, and compliance officers."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from registry_client.pii import looks_like_raw_identifier

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import Conflict, RawPiiRejected, ValidationFailed
from registry.models import LimitScope, Member, MemberLimit
from registry.services.audit import audit_record
from registry.services.quotas import member_limits_forget

STATUS_ACTIONS = {
    Member.Status.ACTIVE: AuditAction.MEMBER_ACTIVE,
    Member.Status.SUSPENDED: AuditAction.MEMBER_SUSPENDED,
}

OFFICERS_GROUP = "compliance_officers"
AUDITORS_GROUP = "compliance_auditors"


@transaction.atomic
def member_create(*, actor: Actor, code: str, name: str, contact_email: str = "") -> Member:
    member = Member(code=code, name=name, contact_email=contact_email)
    try:
        member.full_clean()
    except DjangoValidationError as exc:
        if "code" in exc.message_dict and Member.objects.filter(code=code).exists():
            raise Conflict(f"Member {code} already exists.") from None
        raise ValidationFailed(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        ) from None
    try:
        member.save()
    except IntegrityError:
        raise Conflict(f"Member {code} already exists.") from None
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_CREATED,
        object_type="member",
        object_id=member.code,
        details={"name": name},
    )
    return member


@transaction.atomic
def member_update(*, actor: Actor, member_id: int, name: str, contact_email: str) -> Member:
    """Change a member's name and contact address (its code never changes)."""
    member = Member.objects.select_for_update().get(pk=member_id)
    changed = [
        f for f, v in (("name", name), ("contact_email", contact_email)) if getattr(member, f) != v
    ]
    if not changed:
        return member
    member.name, member.contact_email = name, contact_email
    try:
        member.full_clean()
    except DjangoValidationError as exc:
        raise ValidationFailed(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        ) from None
    member.save(update_fields=changed)
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_UPDATED,
        object_type="member",
        object_id=member.code,
        details={"changed": changed},
    )
    return member


@transaction.atomic
def member_set_status(*, actor: Actor, member: Member, status: str, rationale: str = "") -> Member:
    if status not in Member.Status.values:
        raise ValidationFailed(_("Unknown member status."))
    if looks_like_raw_identifier(rationale):
        raise RawPiiRejected(_("The rationale looks like a raw personal identifier."))
    if member.status != status:
        member.status = status
        # Shown on the member's page while it is suspended; cleared when it is reactivated.
        member.suspension_reason = rationale if status == Member.Status.SUSPENDED else ""
        member.save(update_fields=["status", "suspension_reason"])
        audit_record(
            actor=actor,
            action=STATUS_ACTIONS[status],
            object_type="member",
            object_id=member.code,
            # Free text: only its length goes into the append-only audit trail.
            details={"rationale_length": len(rationale)},
        )
    return member


@transaction.atomic
def member_set_limit(
    *, actor: Actor, member: Member, scope: str, per_minute: int, per_day: int
) -> MemberLimit:
    """Set the member's limits (in units, see services/quotas.py) for `scope`; every web
    process applies them within LIMITS_CACHE_SECONDS, this one from its next call."""
    if scope not in LimitScope.values:
        raise ValidationFailed("Unknown limit scope.")
    if per_minute < 1 or per_day < 1:
        raise ValidationFailed("Limits must be positive.")
    limit, _created = MemberLimit.objects.update_or_create(
        member=member, scope=scope, defaults={"per_minute": per_minute, "per_day": per_day}
    )
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_LIMIT_SET,
        object_type="member",
        object_id=member.code,
        details={"scope": scope, "per_minute": per_minute, "per_day": per_day},
    )
    transaction.on_commit(lambda: member_limits_forget(member.pk))
    return limit


def member_set_dispute_quota(*, actor: Actor, member_id: int, per_day: int | None) -> Member:
    """The disputes a member may file in any 24 hours; None: REGISTRY_DISPUTE_QUOTA_PER_DAY.
    (Zero is allowed: a member barred from filing until the officers look into it.)"""
    if per_day is not None and per_day < 0:
        raise ValidationFailed(_("A dispute quota cannot be negative."))
    return _member_set_setting(
        actor=actor,
        member_id=member_id,
        field="dispute_quota_per_day",
        value=per_day,
        action=AuditAction.MEMBER_LIMIT_SET,
        details={"scope": "dispute", "disputes_per_day": per_day},
    )


def member_set_velocity_alert_threshold(
    *, actor: Actor, member_id: int, threshold: int | None
) -> Member:
    """Other members looking a watched identifier up within 24 hours that raise the
    member's velocity.exceeded alert; None: REGISTRY_VELOCITY_ALERT_THRESHOLD."""
    if threshold is not None and threshold < 1:
        raise ValidationFailed(_("A velocity alert threshold is at least 1."))
    return _member_set_setting(
        actor=actor,
        member_id=member_id,
        field="velocity_alert_threshold",
        value=threshold,
        action=AuditAction.MEMBER_UPDATED,
        details={"velocity_alert_threshold": threshold},
    )


@transaction.atomic
def _member_set_setting(
    *, actor: Actor, member_id: int, field: str, value, action: AuditAction, details: dict
) -> Member:
    """One of the officers' per-member settings (None: the default): saved and audited when
    it changes, under the member's row lock."""
    member = Member.objects.select_for_update().get(pk=member_id)
    if getattr(member, field) == value:
        return member
    setattr(member, field, value)
    member.save(update_fields=[field])
    audit_record(
        actor=actor, action=action, object_type="member", object_id=member.code, details=details
    )
    return member


@transaction.atomic
def officer_create(*, actor: Actor, username: str, password: str, email: str = ""):
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise Conflict(f"User {username} already exists.")
    user = User.objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    user.groups.add(Group.objects.get(name=OFFICERS_GROUP))
    audit_record(
        actor=actor, action=AuditAction.OFFICER_CREATED, object_type="user", object_id=username
    )
    return user

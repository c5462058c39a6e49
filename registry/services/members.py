"""Members, their limits, and compliance officers."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.errors import Conflict, ValidationFailed
from registry.models import Member, MemberLimit
from registry.services.audit import audit_record

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
        action="member.created",
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
        action="member.updated",
        object_type="member",
        object_id=member.code,
        details={"changed": changed},
    )
    return member


@transaction.atomic
def member_set_status(*, actor: Actor, member: Member, status: str, rationale: str = "") -> Member:
    if status not in Member.Status.values:
        raise ValidationFailed(_("Unknown member status."))
    if member.status != status:
        member.status = status
        member.save(update_fields=["status"])
        audit_record(
            actor=actor,
            action=f"member.{status}",
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
    if per_minute < 1 or per_day < 1:
        raise ValidationFailed("Limits must be positive.")
    limit, _created = MemberLimit.objects.update_or_create(
        member=member, scope=scope, defaults={"per_minute": per_minute, "per_day": per_day}
    )
    audit_record(
        actor=actor,
        action="member.limit_set",
        object_type="member",
        object_id=member.code,
        details={"scope": scope, "per_minute": per_minute, "per_day": per_day},
    )
    return limit


@transaction.atomic
def officer_create(*, actor: Actor, username: str, password: str, email: str = ""):
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise Conflict(f"User {username} already exists.")
    user = User.objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    user.groups.add(Group.objects.get(name=OFFICERS_GROUP))
    audit_record(actor=actor, action="officer.created", object_type="user", object_id=username)
    return user

"""API keys: issue (shown once), authenticate (constant time), revoke."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import ValidationFailed
from registry.models import AUDITOR_SCOPES, MEMBER_SCOPES, OFFICER_SCOPES, ApiKey, Member
from registry.services.audit import audit_record
from registry.services.members import AUDITORS_GROUP, OFFICERS_GROUP
from registry.sql import execute_binary

KEY_PREFIX = "rk"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once, never stored


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _split(raw_key: str) -> tuple[str, str] | None:
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def officer_allowed_scopes(groups) -> set[str]:
    """The scopes an officer-held key may carry, given the names of its owner's groups:
    officers may decide (compliance) or only read; auditors only read; anyone else nothing."""
    if OFFICERS_GROUP in groups:
        return set(OFFICER_SCOPES)
    if AUDITORS_GROUP in groups:
        return set(AUDITOR_SCOPES)
    return set()


@transaction.atomic
def api_key_issue(
    *, actor: Actor, member: Member | None = None, officer=None, scopes: list[str], name: str = ""
) -> IssuedKey:
    if (member is None) == (officer is None):
        raise ValidationFailed(_("A key belongs to exactly one member or one officer."))
    scopes = sorted(set(scopes))
    expires_at = None
    if officer is None:
        allowed = set(MEMBER_SCOPES)
    else:
        _check_officer_owner(actor, officer)
        allowed = officer_allowed_scopes(set(officer.groups.values_list("name", flat=True)))
        expires_at = timezone.now() + timedelta(days=settings.REGISTRY_COMPLIANCE_KEY_DAYS)
    if not scopes or not set(scopes) <= allowed:
        raise ValidationFailed(
            _("This owner's key may carry only: %(scopes)s.")
            % {"scopes": ", ".join(sorted(allowed)) or "-"}
        )
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        prefix=prefix,
        secret_hash=_hash_secret(secret),
        member=member,
        officer=officer,
        scopes=scopes,
        name=name,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action=AuditAction.API_KEY_ISSUED,
        object_type="api_key",
        object_id=key.prefix,
        details={
            "member": member.code if member else None,
            "officer": officer.get_username() if officer else None,
            "scopes": scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return IssuedKey(key, f"{KEY_PREFIX}_{prefix}_{secret}")


def _check_officer_owner(actor: Actor, officer) -> None:
    """Compliance keys go to active staff in the officers' or auditors' group, and never
    from an officer to themself (a second officer issues it: four eyes)."""
    if actor.user is not None and actor.user.pk == officer.pk:
        raise ValidationFailed(_("An officer cannot issue an API key to themself."))
    if not (officer.is_active and officer.is_staff):
        raise ValidationFailed(_("A compliance key belongs to an active staff user."))


@transaction.atomic
def api_key_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action=AuditAction.API_KEY_REVOKED,
            object_type="api_key",
            object_id=api_key.prefix,
        )
    return api_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The key, if it is valid, unrevoked, unexpired and its owner active (an officer: still
    in a group that allows every scope of the key); else None. Read afresh on every call
    (never cached), so a revoked key, a suspended member or an officer moved out of the
    officers' group fails its next call."""
    parts = _split(raw_key)
    if parts is None:
        return None
    prefix, secret = parts
    key = _key_with_owner(prefix)
    # Compare even when the prefix is unknown so that timing says nothing about prefixes.
    expected = bytes(key.secret_hash) if key else b"\0" * 32
    if not hmac.compare_digest(expected, _hash_secret(secret)) or key is None:
        return None
    if key.revoked_at is not None or not _owner_active(key):
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return None
    _touch(key)
    return key


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def _attnames(model) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


# Authentication runs on every API call. The ORM spent five times longer building its
# select_related query than PostgreSQL spent running it (31% of a single-identifier lookup's
# CPU time), so the key and its owner are read by one hand-written, prepared statement
# and turned into model instances with Model.from_db, as the ORM itself would. Being the
# first statement of every call, it also stands in for the connection's health check
# (registry/sql.py).
_USER = get_user_model()
_KEY_FIELDS, _MEMBER_FIELDS, _USER_FIELDS = (_attnames(m) for m in (ApiKey, Member, _USER))
# An officer's key also reads its owner's group names (members' keys skip the subquery).
_USER_GROUPS = _USER.groups.through
_KEY_SQL = f"""
    SELECT {_columns(ApiKey, "k")}, {_columns(Member, "m")}, {_columns(_USER, "u")},
           CASE WHEN k.officer_id IS NOT NULL THEN ARRAY(
               SELECT g.name FROM {_USER_GROUPS._meta.db_table} ug
               JOIN {Group._meta.db_table} g ON g.id = ug.group_id
               WHERE ug.{_USER_GROUPS._meta.get_field("user").column} = k.officer_id
           ) END
    FROM {ApiKey._meta.db_table} k
    LEFT JOIN {Member._meta.db_table} m ON m.id = k.member_id
    LEFT JOIN {_USER._meta.db_table} u ON u.{_USER._meta.pk.column} = k.officer_id
    WHERE k.prefix = %(prefix)s
"""  # noqa: S608 - table and column names come from the models, the prefix is a parameter
_MEMBER_AT = len(_KEY_FIELDS)
_USER_AT = _MEMBER_AT + len(_MEMBER_FIELDS)
_GROUPS_AT = _USER_AT + len(_USER_FIELDS)


def _key_with_owner(prefix: str) -> ApiKey | None:
    """The key with that prefix (unique), its member or officer loaded with it."""
    rows = execute_binary(_KEY_SQL, {"prefix": prefix}, checks_health=True)
    if not rows:
        return None
    row = rows[0]
    db = connection.alias
    key = ApiKey.from_db(db, _KEY_FIELDS, row[:_MEMBER_AT])
    member = officer = None
    if key.member_id is not None:
        member = Member.from_db(db, _MEMBER_FIELDS, row[_MEMBER_AT:_USER_AT])
    if key.officer_id is not None:
        officer = _USER.from_db(db, _USER_FIELDS, row[_USER_AT:_GROUPS_AT])
        officer.registry_groups = frozenset(row[_GROUPS_AT] or ())
    ApiKey.member.field.set_cached_value(key, member)
    ApiKey.officer.field.set_cached_value(key, officer)
    return key


def _owner_active(key: ApiKey) -> bool:
    if key.member is not None:
        return key.member.is_active
    officer = key.officer
    allowed = officer_allowed_scopes(officer.registry_groups)
    return officer.is_active and officer.is_staff and set(key.scopes) <= allowed


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now

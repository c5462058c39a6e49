"""API keys: issue (shown once), authenticate (constant time), revoke."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import ValidationFailed
from registry.models import MEMBER_SCOPES, ApiKey, Member, Scope
from registry.services.audit import audit_record
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


@transaction.atomic
def api_key_issue(
    *, actor: Actor, member: Member | None = None, officer=None, scopes: list[str], name: str = ""
) -> IssuedKey:
    if (member is None) == (officer is None):
        raise ValidationFailed("A key belongs to exactly one member or one officer.")
    allowed = {Scope.COMPLIANCE} if officer is not None else set(MEMBER_SCOPES)
    scopes = sorted(set(scopes))
    if not scopes or not set(scopes) <= allowed:
        raise ValidationFailed(
            "Scopes must be a non-empty subset of " + ", ".join(sorted(allowed)) + "."
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
        },
    )
    return IssuedKey(key, f"{KEY_PREFIX}_{prefix}_{secret}")


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
    """The key, if it is valid, unrevoked and its owner active; else None. Read afresh on
    every call (never cached), so a revoked key or a suspended member fails its next call."""
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
_KEY_SQL = f"""
    SELECT {_columns(ApiKey, "k")}, {_columns(Member, "m")}, {_columns(_USER, "u")}
    FROM {ApiKey._meta.db_table} k
    LEFT JOIN {Member._meta.db_table} m ON m.id = k.member_id
    LEFT JOIN {_USER._meta.db_table} u ON u.{_USER._meta.pk.column} = k.officer_id
    WHERE k.prefix = %(prefix)s
"""  # noqa: S608 - table and column names come from the models, the prefix is a parameter
_MEMBER_AT = len(_KEY_FIELDS)
_USER_AT = _MEMBER_AT + len(_MEMBER_FIELDS)


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
        officer = _USER.from_db(db, _USER_FIELDS, row[_USER_AT:])
    ApiKey.member.field.set_cached_value(key, member)
    ApiKey.officer.field.set_cached_value(key, officer)
    return key


def _owner_active(key: ApiKey) -> bool:
    if key.member is not None:
        return key.member.is_active
    return key.officer.is_active and key.officer.is_staff


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now

"""Idempotency keys for case submission (`Idempotency-Key` header).

A member that retries a submission (timeout, dropped connection) with the same key and the
same body gets the first answer back, byte for byte, and nothing is created twice. The same
key with another body is 422 `idempotency_mismatch`.

How it works, in ONE transaction with the submission itself:

1. `INSERT ... ON CONFLICT (member, key) DO NOTHING RETURNING id` claims the key.
2. Claimed: run the submission, store its status and body on the key row, commit. If the
   submission fails (validation, conflict), the transaction rolls back and takes the claim
   with it: only successful answers are replayed, a failed request can be retried as is.
3. Not claimed: the key row exists. Compare the request hash (422 if it differs) and replay
   the stored answer.

Concurrent requests with the same key: the second one's INSERT waits on the unique index
until the first transaction ends (this is the documented behaviour: it WAITS, it does not get
409). If the first committed, the second replays its answer; if it rolled back, the second
claims the key and runs. Either way the work happens once.

Keys live `REGISTRY_IDEMPOTENCY_TTL_HOURS` (at least 24 h, default 48 h); an older key is
treated as unused (reclaimed), and `idempotency_keys_purge` (run by the jobs) deletes them.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from registry_client.pii import looks_like_raw_identifier

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import IdempotencyMismatch, RawPiiRejected, ValidationFailed
from registry.models import IdempotencyKey
from registry.services.audit import audit_record

MAX_KEY_LENGTH = 200
MIN_TTL_HOURS = 24


@dataclass(frozen=True)
class IdempotentAnswer:
    status: int
    body: dict
    replayed: bool


def idempotency_request_hash(*, path: str, body: object) -> str:
    """SHA-256 of the endpoint and the canonical JSON of the body. (Tokens in the body are
    512-bit OPRF outputs: their hash reveals nothing.)"""
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(f"{path}\0{canonical}".encode()).hexdigest()


def idempotency_ttl() -> timedelta:
    return timedelta(hours=max(settings.REGISTRY_IDEMPOTENCY_TTL_HOURS, MIN_TTL_HOURS))


def check_idempotency_key(key: str) -> None:
    """Keys are stored, so they get the same raw-identifier screen as free text."""
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            _("Idempotency-Key must be 1 to %(n)d printable ASCII characters.")
            % {"n": MAX_KEY_LENGTH}
        )
    if looks_like_raw_identifier(key):
        raise RawPiiRejected(
            _("The Idempotency-Key looks like a raw personal identifier; use a random key.")
        )


@transaction.atomic
def idempotent_call(
    *, actor: Actor, key: str | None, request_hash: str, run: Callable[[], tuple[int, dict]]
) -> IdempotentAnswer:
    """Run `run()` (which returns status and JSON body) at most once per (member, key)."""
    if key is None or not actor.is_member:
        status, body = run()
        return IdempotentAnswer(status, body, replayed=False)
    check_idempotency_key(key)
    row = _claim_or_existing(actor, key, request_hash)
    if row is not None:
        if row.request_hash != request_hash:
            raise IdempotencyMismatch(_("This Idempotency-Key was used with a different request."))
        # Replaying hands registry data out again: audited like any read.
        audit_record(
            actor=actor,
            action=AuditAction.IDEMPOTENCY_REPLAYED,
            object_type="idempotency_key",
            object_id=row.pk,
            details={"status": row.response_status},
        )
        return IdempotentAnswer(row.response_status, row.response_body, replayed=True)
    status, body = run()
    IdempotencyKey.objects.filter(member_id=actor.member_id, key=key).update(
        response_status=status, response_body=body
    )
    return IdempotentAnswer(status, body, replayed=False)


def _claim_or_existing(actor: Actor, key: str, request_hash: str) -> IdempotencyKey | None:
    """None when this request now owns the key; else the row of the earlier request."""
    now = timezone.now()
    table = IdempotencyKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (member_id, key, request_hash, created_at)"  # noqa: S608
            " VALUES (%s, %s, %s, %s) ON CONFLICT (member_id, key) DO NOTHING RETURNING id",
            [actor.member_id, key, request_hash, now],
        )
        if cursor.fetchone() is not None:
            return None
    row = IdempotencyKey.objects.select_for_update().get(member_id=actor.member_id, key=key)
    if row.created_at <= now - idempotency_ttl() or row.response_status is None:
        # Past its lifetime (the purge has not run yet), or never answered: reclaim it.
        row.request_hash, row.response_status, row.response_body = request_hash, None, None
        row.created_at = now
        row.save(update_fields=["request_hash", "response_status", "response_body", "created_at"])
        return None
    return row


@transaction.atomic
def idempotency_keys_purge(*, older_than: timedelta | None = None) -> int:
    """Delete keys older than `older_than` (default: the configured TTL, never under 24 h).
    Returns how many were deleted. For the jobs."""
    older_than = max(older_than or idempotency_ttl(), timedelta(hours=MIN_TTL_HOURS))
    deleted, _per_model = IdempotencyKey.objects.filter(
        created_at__lte=timezone.now() - older_than
    ).delete()
    return deleted

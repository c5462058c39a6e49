"""The audit trail: append-only events, chained by hash after insertion.

Why two steps: chaining at insert time would make every write and every lookup wait on one
global lock (each event needs the hash of the one before it). Instead `audit_record` inserts
freely inside the caller's transaction, and `audit_seal` (a job that runs every few seconds,
and under an advisory lock so two sealers never interleave) walks the committed, unsealed
events in id order and appends one AuditSeal per event:

    hash_n = SHA-256(hash_{n-1} || canonical JSON of event n || n)

Guarantees:
- always: the database refuses UPDATE, DELETE and TRUNCATE on both tables (triggers), so the
  application, the admin and any SQL client without superuser rights cannot change history;
- once sealed: any edit, deletion or insertion of a sealed event, even by a database
  superuser who disables the triggers, is detected by `verify_audit`, which names the first
  event that fails;
- between insert and seal (normally seconds; an alarm shows in /readyz and the admin past
  REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS): an event is protected by the triggers only. An event
  whose id is below the highest sealed id but has no seal was inserted after sealing and is
  reported as such.

Sequence ids can commit out of order (a transaction that took id 10 may commit after one
that took id 11), so seals follow commit order, not id order: each run seals every committed
event that has no seal yet, whatever its id. An unsealed event whose id is below sealed ones
and whose time is older than LATE_COMMIT_WINDOW cannot be a late commit (no transaction here
lasts that long): `verify_audit` reports it as inserted.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, AuditSeal
from registry.sql import execute_binary, unnest_insert, unnest_params

GENESIS_HASH = "0" * 64
SEAL_LOCK_ID = 0x5EA1  # pg_advisory_xact_lock key for the sealer
LATE_COMMIT_WINDOW = timedelta(hours=1)


def audit_record(
    *,
    actor: Actor,
    action: AuditAction,
    object_type: str = "",
    object_id: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """Record one event in the caller's transaction. `details` holds ids, counts and
    fingerprints only: never a token, never a raw identifier."""
    event = audit_build(
        actor=actor, action=action, object_type=object_type, object_id=object_id, details=details
    )
    event.save(force_insert=True)
    return event


def audit_build(
    *,
    actor: Actor,
    action: AuditAction,
    object_type: str = "",
    object_id: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """An unsaved event, for writers that record many at once with `audit_record_many`."""
    return AuditEvent(
        created_at=timezone.now(),
        member=actor.member,
        **audit_actor_columns(actor),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        details=details or {},
    )


def audit_actor_columns(actor: Actor) -> dict:
    """Who acted, as an event's columns (besides member_id), for every writer of events."""
    return {
        "actor_type": actor.type,
        "api_key_prefix": actor.api_key_prefix,
        "officer": actor.officer_username,
    }


# An event's columns (all but its id), with their SQL types: the one list for the writers
# that insert events with SQL (audit_record_many, the lookup's statement) and for the seal's
# digest. Bulk inserts send them as binary arrays (bulk_create quotes 500 events' values into
# the SQL text, which cost more than the insert).
AUDIT_EVENT_COLUMNS = {
    "created_at": "timestamptz",
    "actor_type": "text",
    "member_id": "bigint",
    "api_key_prefix": "text",
    "officer": "text",
    "action": "text",
    "object_type": "text",
    "object_id": "text",
    "details": "jsonb",
}
_INSERT_EVENTS_SQL = unnest_insert(AuditEvent._meta.db_table, AUDIT_EVENT_COLUMNS)


def audit_record_many(events: list[AuditEvent]) -> None:
    """Record built events (`audit_build`) in the caller's transaction, in one statement."""
    if not events:
        return
    params = unnest_params(events, AUDIT_EVENT_COLUMNS)
    params["details"] = [json.dumps(details) for details in params["details"]]
    execute_binary(_INSERT_EVENTS_SQL, params, fetch=False)


def event_digest_input(event: AuditEvent) -> bytes:
    payload = {column: getattr(event, column) for column in AUDIT_EVENT_COLUMNS}
    payload.update(id=event.pk, created_at=event.created_at.isoformat())
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(prev_hash: str, event: AuditEvent, seq: int) -> str:
    h = hashlib.sha256()
    h.update(prev_hash.encode())
    h.update(event_digest_input(event))
    h.update(str(seq).encode())
    return h.hexdigest()


@transaction.atomic
def audit_seal(*, limit: int = 10_000) -> int:
    """Seal committed, unsealed events. Returns how many were sealed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_ID])
        if not cursor.fetchone()[0]:
            return 0  # another sealer is at work
    last = AuditSeal.objects.order_by("-seq").first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    events = list(
        _unsealed_events(since=last.sealed_at - LATE_COMMIT_WINDOW if last else None).order_by(
            "id"
        )[:limit]
    )
    seals = []
    now = timezone.now()
    for event in events:
        seq += 1
        seal_hash = chain_hash(prev_hash, event, seq)
        seals.append(
            AuditSeal(
                seq=seq, event_id=event.pk, prev_hash=prev_hash, hash=seal_hash, sealed_at=now
            )
        )
        prev_hash = seal_hash
    AuditSeal.objects.bulk_create(seals)
    return len(seals)


def _unsealed_events(*, since=None):
    events = AuditEvent.objects.exclude(Exists(AuditSeal.objects.filter(event_id=OuterRef("pk"))))
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events


def audit_seal_lag_seconds() -> float:
    """Age of the oldest unsealed event (0 when everything is sealed)."""
    last = AuditSeal.objects.order_by("-seq").first()
    since = last.sealed_at - LATE_COMMIT_WINDOW if last else None
    oldest = (
        _unsealed_events(since=since)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return (timezone.now() - oldest).total_seconds() if oldest else 0.0


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    unsealed: int
    first_bad_event_id: int | None = None
    problem: str = ""


def audit_verify() -> VerifyResult:
    """Walk the chain in seal order; report the first event that fails."""
    prev_hash = GENESIS_HASH
    checked = 0
    batch: list[AuditSeal] = []
    for seal in AuditSeal.objects.order_by("seq").iterator(chunk_size=2000):
        batch.append(seal)
        if len(batch) == 2000:
            prev_hash, bad = _verify_batch(batch, prev_hash, checked)
            if bad:
                return bad
            checked += len(batch)
            batch = []
    if batch:
        prev_hash, bad = _verify_batch(batch, prev_hash, checked)
        if bad:
            return bad
        checked += len(batch)
    return _verify_unsealed(checked)


def _verify_batch(batch: list[AuditSeal], prev_hash: str, checked: int):
    events = AuditEvent.objects.in_bulk([s.event_id for s in batch])
    for offset, seal in enumerate(batch):
        expected_seq = checked + offset + 1
        if seal.seq != expected_seq:
            return prev_hash, VerifyResult(
                False,
                checked + offset,
                0,
                seal.event_id,
                f"seal {expected_seq} is missing: a sealed event was deleted before event "
                f"{seal.event_id}",
            )
        event = events.get(seal.event_id)
        if event is None:
            return prev_hash, VerifyResult(
                False, checked + offset, 0, seal.event_id, "sealed event was deleted"
            )
        if seal.prev_hash != prev_hash or chain_hash(prev_hash, event, seal.seq) != seal.hash:
            return prev_hash, VerifyResult(
                False, checked + offset, 0, event.pk, "event does not match its seal: it was edited"
            )
        prev_hash = seal.hash
    return prev_hash, None


def _verify_unsealed(checked: int) -> VerifyResult:
    highest_sealed = AuditSeal.objects.aggregate(m=Max("event_id"))["m"] or 0
    unsealed = _unsealed_events()
    suspicious = (
        unsealed.filter(id__lt=highest_sealed, created_at__lt=timezone.now() - LATE_COMMIT_WINDOW)
        .order_by("id")
        .first()
    )
    if suspicious is not None:
        return VerifyResult(
            False,
            checked,
            unsealed.count(),
            suspicious.pk,
            "event was inserted among sealed events",
        )
    return VerifyResult(True, checked, unsealed.count())

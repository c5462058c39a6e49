"""The audit trail: append-only events, chained by hash after insertion.

Why two steps: chaining at insert time would make every write and every lookup wait on one
global lock (each event needs the hash of the one before it). Instead `audit_record` inserts
freely inside the caller's transaction, and `audit_seal` (a job that runs every few seconds,
and under an advisory lock so two sealers never interleave) takes the committed, unsealed
events (found from its frontier: the highest id sealed and the gaps below it, see below) in
id order and appends one AuditSeal per event:

    hash_n = HMAC-SHA256(sealing key, hash_{n-1} || canonical JSON of event n || n)

The sealing key (REGISTRY_AUDIT_SEAL_KEY) lives in configuration, not in the database: whoever
can only write to the database cannot compute a seal. At least hourly the sealer also signs
the chain's head (seq, hash, time) with the registry's Ed25519 key (REGISTRY_AUDIT_SIGNING_SEED)
as an AuditCheckpoint, writes it to REGISTRY_AUDIT_CHECKPOINT_DIR and shows it in the admin,
so that a copy can be kept outside the database (mailed, printed, published).

Guarantees:
- always: the application connects as a role that may only INSERT and SELECT the audit tables
  and owns nothing (deploy/postgres/roles.sql), and the tables' triggers refuse UPDATE, DELETE
  and TRUNCATE from everyone else, so the application, the admin and any SQL client without
  the owner's or a superuser's rights cannot change history;
- once sealed: any edit, deletion or insertion of a sealed event, even by a database
  superuser who disables the triggers, is detected by `verify_audit`, which names the first
  event that fails, unless the sealing key is known too;
- once checkpointed: even someone holding the sealing key who rewrites the chain from
  genesis fails `verify_audit --checkpoint FILE` against a checkpoint kept elsewhere (the
  signing key cannot help them: the copy outside already exists);
- between insert and seal (normally seconds; an alarm shows in /readyz and the admin past
  REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS): an event is protected by the triggers only. An event
  whose id is below the highest sealed id but has no seal was inserted after sealing and is
  reported as such.

Sequence ids can commit out of order (a transaction that took id 10 may commit after one
that took id 11), so seals follow commit order, not id order: each run seals every committed
event that has no seal yet, whatever its id. An unsealed event whose id is below sealed ones
and whose time is older than LATE_COMMIT_WINDOW cannot be a late commit (no transaction here
lasts that long): `verify_audit` reports it as inserted. (The frontier is only the sealer's
bookmark: the verifier looks for unsealed events itself.)

Verification walks the seals in order and recomputes each; by default (`incremental`) only
those after the newest checkpoint that an earlier passed run verified (AuditVerification),
after checking that its seal still has the checkpoint's hash. Months archived and dropped
(services/audit_archive.py, AuditArchive) leave gaps in the seals that a walk crosses with the
archive's last hash; any other gap fails it.
"""

import base64
import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pysodium
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import (
    AuditArchive,
    AuditCheckpoint,
    AuditEvent,
    AuditSeal,
    AuditVerification,
    RegistryState,
)
from registry.sql import compact, execute_binary, unnest_insert, unnest_params

GENESIS_HASH = "0" * 64
SEAL_LOCK_ID = 0x5EA1  # pg_advisory_xact_lock key for the sealer
LATE_COMMIT_WINDOW = timedelta(hours=1)
CHECKPOINT_FORMAT = "consortium-registry-audit-checkpoint/1"
# A checkpoint is due this much before the interval is up, so that the sealer (every 10 s)
# never lets the newest one grow older than the interval.
CHECKPOINT_SLACK = timedelta(seconds=30)
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER SubjectPublicKeyInfo


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
    payload.update(id=event.pk)
    return _digest_json(payload)


def row_digest_input(row: dict) -> bytes:
    """The same bytes as `event_digest_input`, from an event row as `event_rows` reads it
    (or as an archive file holds it)."""
    return _digest_json(dict(row))


def _digest_json(payload: dict) -> bytes:
    created_at = payload["created_at"]
    if not isinstance(created_at, str):
        payload["created_at"] = created_at.isoformat()
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


_EVENT_FIELDS = ("id", *AUDIT_EVENT_COLUMNS)
_EVENT_TABLE = AuditEvent._meta.db_table
_SEAL_TABLE = AuditSeal._meta.db_table


def event_select(alias: str = "e") -> str:
    """SELECT of an event's fields in `_EVENT_FIELDS` order, for `event_rows`."""
    fields = ", ".join(f"{alias}.{field}" for field in _EVENT_FIELDS)
    return f"SELECT {fields} FROM {_EVENT_TABLE} {alias}"  # noqa: S608 - the code's own names


def event_rows(sql: str, params: dict) -> list[dict]:
    """Events as plain dicts (no model instances: the sealer and the verifier read thousands),
    from a statement that selects `event_select()`'s fields. Run with Django's client-side
    binding, not prepared: these range scans need the plan for their actual bounds (the
    generic plan of `id > $1`, which settings.py forces on prepared statements, is a merge
    over the whole seal index)."""
    rows = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    for values in fetched:
        row = dict(zip(_EVENT_FIELDS, values, strict=True))
        if isinstance(row["details"], str | bytes):  # Django reads jsonb as text
            row["details"] = json.loads(row["details"])
        rows.append(row)
    return rows


def _hex_key(name: str, value: str) -> bytes:
    try:
        key = bytes.fromhex(value or "")
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must be 32 bytes written as 64 hex characters")
    return key


@lru_cache(maxsize=4)
def _keyed_mac(key_hex: str):
    """The HMAC state after the key, copied for each seal (cheaper than re-keying)."""
    return hmac.new(_hex_key("REGISTRY_AUDIT_SEAL_KEY", key_hex), digestmod="sha256")


def seal_mac(seq: int):
    """A fresh MAC for seal `seq`: keyed, except for the seals made before keyed sealing
    (1..REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL, plain SHA-256, set by the operator who upgraded)."""
    if seq <= settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL:
        return hashlib.sha256()
    return _keyed_mac(settings.REGISTRY_AUDIT_SEAL_KEY).copy()


def chain_hash(prev_hash: str, event: AuditEvent, seq: int) -> str:
    return _chain(prev_hash, event_digest_input(event), seq)


def row_chain_hash(prev_hash: str, row: dict, seq: int) -> str:
    """`chain_hash` of an event row (`event_rows`, or an archive file's)."""
    return _chain(prev_hash, row_digest_input(row), seq)


def _chain(prev_hash: str, digest_input: bytes, seq: int) -> str:
    h = seal_mac(seq)
    h.update(prev_hash.encode())
    h.update(digest_input)
    h.update(str(seq).encode())
    return h.hexdigest()


# The sealer's frontier (RegistryState, written in the sealing transaction): `high`, the highest
# event id it has sealed, and `gaps`, the id ranges below it that it has not seen (a
# transaction still open when the ids above were sealed, or a rolled-back insert), each with
# the time it was noticed. A run seals the committed events in its gaps (late commits), then
# the events above `high`: two index range scans, whatever the trail's size. (Looking for
# unsealed events among the last LATE_COMMIT_WINDOW of events instead cost an anti-join over
# the whole window on every run: with 3M events in that hour the sealer managed 936 events/s.)
# A gap is given up LATE_COMMIT_WINDOW after it was noticed; an event that appears in it after
# that is not sealed, and verify_audit reports it as inserted.
FRONTIER_KEY = "audit_seal_frontier"
_SEAL_COLUMNS = {
    "seq": "bigint",
    "event_id": "bigint",
    # the seal's partition is its event's month: a month's events and seals drop together
    "event_created_at": "timestamptz",
    "prev_hash": "text",
    "hash": "text",
    "sealed_at": "timestamptz",
}
_INSERT_SEALS_SQL = unnest_insert(_SEAL_TABLE, _SEAL_COLUMNS)
# (The time column confines the probe to the event's own month of seals.)
_NOT_SEALED = (
    f"NOT EXISTS (SELECT FROM {_SEAL_TABLE} s "
    "WHERE s.event_id = e.id AND s.event_created_at = e.created_at)"
)
_NEW_EVENTS_SQL = compact(
    f"{event_select()} WHERE e.id > %(high)s AND {_NOT_SEALED} ORDER BY e.id LIMIT %(limit)s"
)
# One index range scan per gap (OFFSET 0 keeps the planner from merging the ranges into one
# scan of the table).
_IN_GAPS = f"""unnest(%(firsts)s::bigint[], %(lasts)s::bigint[]) AS gap (first_id, last_id)
    CROSS JOIN LATERAL (SELECT * FROM {_EVENT_TABLE} g
        WHERE g.id BETWEEN gap.first_id AND gap.last_id OFFSET 0) AS e"""  # noqa: S608
_GAP_EVENTS_SQL = compact(f"""SELECT {", ".join(f"e.{f}" for f in _EVENT_FIELDS)} FROM {_IN_GAPS}
    WHERE {_NOT_SEALED} ORDER BY e.id""")  # noqa: S608 - the code's own table names


@dataclass
class Frontier:
    high: int
    gaps: list[list[int]]  # [first id, last id, noticed (unix seconds)]

    def params(self) -> dict:
        return {
            "high": self.high,
            "firsts": [gap[0] for gap in self.gaps],
            "lasts": [gap[1] for gap in self.gaps],
        }


def _frontier_read(now: datetime) -> Frontier:
    state = RegistryState.objects.filter(key=FRONTIER_KEY).first()
    if state is not None:
        return Frontier(int(state.value["high"]), [list(g) for g in state.value["gaps"]])
    return _frontier_from_seals(now)


def _frontier_from_seals(now: datetime) -> Frontier:
    """The frontier of a trail sealed before the frontier was kept (or whose state was lost):
    every unsealed id among the events of the last LATE_COMMIT_WINDOW is a gap. Costs one
    pass over that window, once."""
    last = AuditSeal.objects.order_by("-seq").first()
    high = AuditSeal.objects.aggregate(m=Max("event_id"))["m"] or 0
    since = min(last.sealed_at, now) - LATE_COMMIT_WINDOW if last else now
    low = AuditEvent.objects.filter(created_at__gte=since).aggregate(m=Min("id"))["m"]
    if low is None or low > high:
        return Frontier(high, [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT g FROM generate_series(%s::bigint, %s::bigint) AS g "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT FROM {_SEAL_TABLE} s WHERE s.event_id = g) ORDER BY g",
            [low, high],
        )
        unsealed = [row[0] for row in cursor.fetchall()]
    noticed = int(now.timestamp())
    return Frontier(high, _ranges(unsealed, noticed))


def _ranges(ids: list[int], noticed: int) -> list[list[int]]:
    """Sorted ids as [first, last, noticed] runs."""
    ranges: list[list[int]] = []
    for event_id in ids:
        if ranges and ranges[-1][1] == event_id - 1:
            ranges[-1][1] = event_id
        else:
            ranges.append([event_id, event_id, noticed])
    return ranges


def _without(gaps: list[list[int]], found: list[int]) -> list[list[int]]:
    """The gaps minus the ids found (sorted) in them."""
    if not found:
        return gaps
    remaining, found_at = [], 0
    for first, last, noticed in gaps:
        start = first
        while found_at < len(found) and found[found_at] <= last:
            event_id = found[found_at]
            if event_id >= start:
                if event_id > start:
                    remaining.append([start, event_id - 1, noticed])
                start = event_id + 1
            found_at += 1
        if start <= last:
            remaining.append([start, last, noticed])
    return remaining


@transaction.atomic
def audit_seal(*, limit: int = 10_000) -> int:
    """Seal committed, unsealed events (late commits in the frontier's gaps first, then new
    ones in id order, at most about `limit`). Returns how many were sealed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_ID])
        if not cursor.fetchone()[0]:
            return 0  # another sealer is at work
    now = timezone.now()
    frontier = _frontier_read(now)
    expired = int((now - LATE_COMMIT_WINDOW).timestamp())
    gaps = [gap for gap in frontier.gaps if gap[2] >= expired]
    late = []
    if gaps:
        late = event_rows(
            _GAP_EVENTS_SQL, {"firsts": [g[0] for g in gaps], "lasts": [g[1] for g in gaps]}
        )
        gaps = _without(gaps, [row["id"] for row in late])
    new = event_rows(_NEW_EVENTS_SQL, {"high": frontier.high, "limit": max(limit - len(late), 0)})
    noticed, previous = int(now.timestamp()), frontier.high
    for row in new:
        if row["id"] > previous + 1:
            gaps.append([previous + 1, row["id"] - 1, noticed])
        previous = row["id"]
    RegistryState.objects.update_or_create(
        key=FRONTIER_KEY, defaults={"value": {"high": previous, "gaps": gaps}}
    )
    events = late + new
    if not events:
        return 0
    last = AuditSeal.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = last or (0, GENESIS_HASH)
    columns = {column: [] for column in _SEAL_COLUMNS}
    for row in events:
        seq += 1
        seal_hash = row_chain_hash(prev_hash, row, seq)
        for column, value in zip(
            _SEAL_COLUMNS,
            (seq, row["id"], row["created_at"], prev_hash, seal_hash, now),
            strict=True,
        ):
            columns[column].append(value)
        prev_hash = seal_hash
    execute_binary(_INSERT_SEALS_SQL, columns, fetch=False)
    return len(events)


def _unsealed_events(*, since=None):
    events = AuditEvent.objects.exclude(Exists(AuditSeal.objects.filter(event_id=OuterRef("pk"))))
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events


_PENDING_SQL = compact(f"""SELECT count(*), min(e.created_at) FROM (
        SELECT e.id, e.created_at FROM {_EVENT_TABLE} e WHERE e.id > %(high)s
        UNION ALL
        SELECT e.id, e.created_at FROM {_IN_GAPS}
    ) AS e WHERE {_NOT_SEALED}""")  # noqa: S608 - the code's own table names


def audit_pending() -> tuple[int, datetime | None]:
    """How many committed events await their seal, and the oldest one's time."""
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_SQL, _frontier_read(timezone.now()).params())
        count, oldest = cursor.fetchone()
    return count, oldest


def audit_seal_lag_seconds() -> float:
    """Age of the oldest unsealed event (0 when everything is sealed)."""
    oldest = audit_pending()[1]
    return max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0


# --- Checkpoints ----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _signing_keypair(seed_hex: str) -> tuple[bytes, bytes]:
    return pysodium.crypto_sign_seed_keypair(_hex_key("REGISTRY_AUDIT_SIGNING_SEED", seed_hex))


def signing_public_key() -> str:
    """The registry's checkpoint public key (hex), derived from the configured seed."""
    return _signing_keypair(settings.REGISTRY_AUDIT_SIGNING_SEED)[0].hex()


def key_id(public_key_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


def _time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_message(*, seq: int, hash: str, time: str) -> bytes:  # noqa: A002 - the field
    """The exact bytes the registry signs: one line, so that an auditor can check the
    signature with any Ed25519 tool (openssl pkeyutl -verify -rawin)."""
    return f"{CHECKPOINT_FORMAT} seq={seq} hash={hash} time={time}".encode()


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict:
    """The self-describing JSON of a checkpoint: what goes to the file and the download."""
    time = _time_text(checkpoint.signed_at)
    der = _ED25519_SPKI_PREFIX + bytes.fromhex(checkpoint.public_key)
    return {
        "format": CHECKPOINT_FORMAT,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "time": time,
        "key_id": checkpoint.key_id,
        "public_key": checkpoint.public_key,
        "public_key_pem": "-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END PUBLIC KEY-----\n",
        "signed_message": checkpoint_message(
            seq=checkpoint.seq, hash=checkpoint.hash, time=time
        ).decode(),
        "signature": checkpoint.signature,
        "algorithm": "Ed25519 (RFC 8032) over signed_message as UTF-8; signature in hex",
        "meaning": "The registry's audit chain had sealed `seq` events, the last seal's hash "
        "being `hash`, at `time`. manage.py verify_audit --checkpoint FILE checks that the "
        "chain still has this hash at this position.",
    }


def checkpoint_filename(checkpoint: AuditCheckpoint) -> str:
    stamp = checkpoint.signed_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"audit-checkpoint-{checkpoint.seq:012d}-{stamp}.json"


@transaction.atomic
def audit_checkpoint(*, now: datetime | None = None, force: bool = False) -> AuditCheckpoint | None:
    """Sign the chain's head if the newest checkpoint is older than
    REGISTRY_AUDIT_CHECKPOINT_SECONDS (or `force`). Returns the new checkpoint, or None when
    none was due, the chain is empty or the sealer holds the lock (the next run retries)."""
    now = (now or timezone.now()).replace(microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_ID])
        if not cursor.fetchone()[0]:
            return None
    # The newest checkpoint of the head (not one signed since at an archive's end, lower down).
    newest = AuditCheckpoint.objects.order_by("-seq", "-signed_at").first()
    interval = timedelta(seconds=settings.REGISTRY_AUDIT_CHECKPOINT_SECONDS)
    if newest and not force and newest.signed_at > now - interval + CHECKPOINT_SLACK:
        return None
    head = AuditSeal.objects.order_by("-seq").first()
    if head is None:
        return None
    return checkpoint_sign(seq=head.seq, seal_hash=head.hash, now=now)


def checkpoint_sign(*, seq: int, seal_hash: str, now: datetime) -> AuditCheckpoint:
    """Sign (seq, hash, now) as a checkpoint, record it and write its file: the head's (above)
    or an archive's last seal (services/audit_archive.py). In the caller's transaction."""
    now = now.replace(microsecond=0)
    public_key, secret_key = _signing_keypair(settings.REGISTRY_AUDIT_SIGNING_SEED)
    message = checkpoint_message(seq=seq, hash=seal_hash, time=_time_text(now))
    checkpoint = AuditCheckpoint.objects.create(
        seq=seq,
        hash=seal_hash,
        signed_at=now,
        key_id=key_id(public_key.hex()),
        public_key=public_key.hex(),
        signature=pysodium.crypto_sign_detached(message, secret_key).hex(),
    )
    audit_record(
        actor=Actor.system(),
        action=AuditAction.AUDIT_CHECKPOINTED,
        object_type="audit_checkpoint",
        object_id=str(checkpoint.pk),
        details={"seq": checkpoint.seq, "hash": checkpoint.hash, "key_id": checkpoint.key_id},
    )
    # Written before the commit, not on_commit: a file that cannot be written fails the run,
    # which rolls the checkpoint back and retries it on the next one. (A file whose commit then
    # fails still states a true head.)
    _write_checkpoint_file(checkpoint)
    return checkpoint


def _write_checkpoint_file(checkpoint: AuditCheckpoint) -> None:
    folder = settings.REGISTRY_AUDIT_CHECKPOINT_DIR
    if not folder:
        return
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    text = json.dumps(checkpoint_document(checkpoint), indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=target, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # a public statement: the auditors' copy job reads it
        os.replace(temporary, target / checkpoint_filename(checkpoint))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def audit_checkpoint_latest() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-signed_at", "-id").first()


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted (malformed, unknown key, bad signature)."""


@dataclass(frozen=True)
class TrustedCheckpoint:
    seq: int
    hash: str
    time: str
    key_id: str
    source: str


def checkpoint_parse(
    text: str, *, trusted_public_keys: set[str], source: str = "checkpoint"
) -> TrustedCheckpoint:
    """A checkpoint document whose signature verifies under one of the trusted public keys.
    The message is rebuilt from the fields: a `signed_message` that says otherwise counts
    for nothing."""
    try:
        document = json.loads(text)
        seq, chain, time = document["seq"], document["hash"], document["time"]
        public_key, signature = document["public_key"], bytes.fromhex(document["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: not a registry checkpoint") from exc
    if document.get("format") != CHECKPOINT_FORMAT or not (
        isinstance(seq, int)
        and seq > 0
        and isinstance(chain, str)
        and len(chain) == 64
        and isinstance(time, str)
        and isinstance(public_key, str)
    ):
        raise CheckpointError(f"{source}: not a registry checkpoint")
    if public_key.lower() not in {k.lower() for k in trusted_public_keys}:
        raise CheckpointError(f"{source}: signed by a key this registry does not trust")
    try:
        pysodium.crypto_sign_verify_detached(
            signature, checkpoint_message(seq=seq, hash=chain, time=time), bytes.fromhex(public_key)
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: the signature does not verify") from exc
    return TrustedCheckpoint(seq, chain, time, key_id(public_key), source)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    unsealed: int
    first_bad_event_id: int | None = None
    problem: str = ""
    checkpoints: int = 0
    anchor_seq: int = 0  # incremental: the verified checkpoint's seal the walk started after
    head_seq: int = 0  # the last seal walked
    archived: int = 0  # seals not in the database, covered by archived months


@dataclass(frozen=True)
class Anchor:
    """Where an incremental walk starts: a seal whose hash a signed checkpoint states and an
    earlier run of verify_audit verified."""

    seq: int
    hash: str
    checkpoint: AuditCheckpoint


class _Archives:
    """The seq ranges of archived months (their seals may have been dropped), and the hash
    each range ends with."""

    def __init__(self):
        self.ranges = list(
            AuditArchive.objects.order_by("first_seq").values_list(
                "first_seq", "last_seq", "last_hash"
            )
        )

    def covers(self, first: int, last: int) -> bool:
        reached = first - 1
        for low, high, _hash in self.ranges:
            if low > reached + 1:
                break
            reached = max(reached, high)
            if reached >= last:
                return True
        return reached >= last

    def hash_at(self, seq: int) -> str:
        return next((h for _low, high, h in self.ranges if high == seq and h), "")


def audit_verify(
    *, checkpoints: tuple[TrustedCheckpoint, ...] = (), incremental: bool = False
) -> VerifyResult:
    """Walk the chain in seal order and report the first event that fails; then check that
    the chain still has the head of every stored checkpoint and of `checkpoints` (parsed
    from copies kept outside the database: the proof against a chain rewritten with the
    sealing key).

    `incremental`: start after the newest checkpoint that an earlier run verified (and whose
    seal still has the checkpoint's hash, else the chain was rewritten: refused), walking only
    the seals after it, and check only the stored checkpoints from there on. Proves nothing
    about the seals before that anchor beyond their last hash; `--full` does (docs/security.md).
    Seals missing from the database are accepted only inside an archived month's range
    (AuditArchive), the walk going on from that archive's last hash."""
    anchor = None
    if incremental:
        anchor, refused = _incremental_anchor()
        if refused:
            return refused
    archives = _Archives()
    result = _verify_chain(anchor, archives)
    if not result.ok:
        return result
    bad = _verify_checkpoints(checkpoints, result, archives)
    if bad:
        return bad
    _verify_unsealed(result, full=anchor is None)
    return result


def _incremental_anchor() -> tuple[Anchor | None, VerifyResult | None]:
    verified = (
        AuditVerification.objects.order_by("-seq", "-id").values_list(
            "checkpoint_id", "seq", "hash"
        )
    )[:50]
    for checkpoint_id, seq, chain in verified:
        checkpoint = AuditCheckpoint.objects.filter(pk=checkpoint_id).first()
        if (
            checkpoint is None  # a verification of a checkpoint that is gone proves nothing
            or (checkpoint.seq, checkpoint.hash) != (seq, chain)
            or not _stored_signature_ok(checkpoint)
        ):
            continue
        seal = AuditSeal.objects.filter(seq=seq).values_list("hash", "event_id").first()
        if seal is None and _Archives().covers(seq, seq):
            continue  # its month was archived and dropped since
        if seal is None or seal[0] != checkpoint.hash:
            return None, VerifyResult(
                False,
                0,
                0,
                seal[1] if seal else None,
                f"seal {seq} no longer has the hash of stored checkpoint {checkpoint.pk}, "
                "verified before: sealed history was rewritten at or before this event",
                anchor_seq=seq,
            )
        return Anchor(seq, chain, checkpoint), None
    return None, None


_SEALS_AFTER_SQL = compact(f"""SELECT seq, event_id, prev_hash, hash FROM {_SEAL_TABLE}
    WHERE seq > %(after)s ORDER BY seq LIMIT %(limit)s""")  # noqa: S608
_EVENTS_BY_ID_SQL = compact(f"{event_select()} WHERE e.id = ANY(%(ids)s::bigint[])")
VERIFY_BATCH = 2000


def _verify_chain(anchor: Anchor | None, archives: _Archives) -> VerifyResult:
    after, prev_hash = (anchor.seq, anchor.hash) if anchor else (0, GENESIS_HASH)
    result = VerifyResult(True, 0, 0, anchor_seq=after, head_seq=after)
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_SEALS_AFTER_SQL, {"after": after, "limit": VERIFY_BATCH})
            seals = cursor.fetchall()
        if not seals:
            return result
        events = {
            row["id"]: row
            for row in event_rows(_EVENTS_BY_ID_SQL, {"ids": [seal[1] for seal in seals]})
        }
        for seq, event_id, seal_prev, seal_hash in seals:
            if seq != after + 1:
                if not archives.covers(after + 1, seq - 1):
                    result.ok, result.first_bad_event_id = False, event_id
                    result.problem = (
                        f"seal {after + 1} is missing: a sealed event was deleted before event "
                        f"{event_id}"
                    )
                    return result
                # Those seals were verified in their archive; go on from the hash it ends with.
                result.archived += seq - 1 - after
                prev_hash = archives.hash_at(seq - 1) or seal_prev
            event = events.get(event_id)
            if event is None:
                result.ok, result.first_bad_event_id = False, event_id
                result.problem = "sealed event was deleted"
                return result
            if seal_prev != prev_hash or row_chain_hash(prev_hash, event, seq) != seal_hash:
                result.ok, result.first_bad_event_id = False, event_id
                result.problem = "event does not match its seal: it was edited"
                if seq == 1:  # every seal fails from the first: perhaps the wrong key
                    result.problem += (
                        " (or REGISTRY_AUDIT_SEAL_KEY is not the key that sealed the trail)"
                    )
                return result
            prev_hash, after = seal_hash, seq
            result.checked += 1
            result.head_seq = seq


def _verify_checkpoints(
    external: tuple[TrustedCheckpoint, ...], result: VerifyResult, archives: _Archives
) -> VerifyResult | None:
    """Every stored checkpoint (from the anchor on, when incremental) must carry a valid
    signature; it and every external one must name a seal the (already verified) chain has,
    with the same hash, or one inside an archived month."""
    stored = AuditCheckpoint.objects.filter(seq__gte=result.anchor_seq).order_by("seq", "id")
    heads = [
        (
            TrustedCheckpoint(cp.seq, cp.hash, _time_text(cp.signed_at), cp.key_id, "stored"),
            cp,
        )
        for cp in stored
    ]
    heads += [(cp, None) for cp in external]
    seals = AuditSeal.objects.filter(seq__in={head.seq for head, _ in heads})
    hashes, events = {}, {}
    for seq, seal_hash, event_id in seals.values_list("seq", "hash", "event_id"):
        hashes[seq], events[seq] = seal_hash, event_id
    for head, checkpoint in heads:
        label = (
            f"the checkpoint of {head.time} (seal {head.seq})"
            if checkpoint is None
            else f"stored checkpoint {checkpoint.pk} ({head.time}, seal {head.seq})"
        )
        if checkpoint is not None and not _stored_signature_ok(checkpoint):
            return _failed(result, None, f"{label} has a bad signature: it was forged or edited")
        if head.seq not in hashes:
            if head.seq <= result.head_seq and archives.covers(head.seq, head.seq):
                if archives.hash_at(head.seq) not in ("", head.hash):
                    return _failed(
                        result, None, f"the archived months do not match {label}: rewritten"
                    )
                continue  # in an archived month: checked against the archive offline
            return _failed(
                result,
                None,
                f"the chain ends at seal {result.head_seq}, before {label}: sealed events "
                "were removed",
            )
        if hashes[head.seq] != head.hash:
            return _failed(
                result,
                events[head.seq],
                f"the chain does not match {label}: sealed history was rewritten at or "
                "before this event",
            )
    result.checkpoints = len(heads)
    return None


def _failed(result: VerifyResult, event_id: int | None, problem: str) -> VerifyResult:
    result.ok, result.first_bad_event_id, result.problem = False, event_id, problem
    return result


def _stored_signature_ok(checkpoint: AuditCheckpoint) -> bool:
    message = checkpoint_message(
        seq=checkpoint.seq, hash=checkpoint.hash, time=_time_text(checkpoint.signed_at)
    )
    try:
        pysodium.crypto_sign_verify_detached(
            bytes.fromhex(checkpoint.signature), message, bytes.fromhex(checkpoint.public_key)
        )
    except ValueError:
        return False
    return True


def _verify_unsealed(result: VerifyResult, *, full: bool) -> None:
    """An unsealed event below the highest sealed id, older than any transaction lasts, was
    inserted among sealed ones. A full run looks at every event; an incremental one at the
    events from the first one its walk sealed on."""
    result.unsealed = audit_pending()[0]
    highest_sealed = AuditSeal.objects.aggregate(m=Max("event_id"))["m"] or 0
    suspects = _unsealed_events().filter(
        id__lt=highest_sealed, created_at__lt=timezone.now() - LATE_COMMIT_WINDOW
    )
    if not full:
        low = AuditSeal.objects.filter(seq__gt=result.anchor_seq).aggregate(m=Min("event_id"))["m"]
        if low is None:
            return
        suspects = suspects.filter(id__gte=low)
    suspicious = suspects.order_by("id").first()
    if suspicious is not None:
        _failed(result, suspicious.pk, "event was inserted among sealed events")


@transaction.atomic
def audit_verification_run(
    *, actor: Actor, checkpoints: tuple[TrustedCheckpoint, ...] = (), full: bool = False
) -> VerifyResult:
    """`audit_verify` (incremental unless `full`); when the chain passes, remember the newest
    stored checkpoint it covered as the next incremental run's anchor, and record the run."""
    result = audit_verify(checkpoints=checkpoints, incremental=not full)
    if not result.ok:
        return result
    newest = (
        AuditCheckpoint.objects.filter(seq__gte=result.anchor_seq, seq__lte=result.head_seq)
        .filter(Exists(AuditSeal.objects.filter(seq=OuterRef("seq"))))  # not in a dropped month
        .order_by("-seq", "-id")
        .first()
    )
    if newest is not None:
        AuditVerification.objects.create(
            checkpoint=newest,
            seq=newest.seq,
            hash=newest.hash,
            head_seq=result.head_seq,
            full=full,
            verified_at=timezone.now(),
        )
    audit_record(
        actor=actor,
        action=AuditAction.AUDIT_VERIFIED,
        object_type="audit",
        details={
            "ok": True,
            "full": full,
            "from_seq": result.anchor_seq,
            "to_seq": result.head_seq,
            "checked": result.checked,
            "archived": result.archived,
            "anchor_checkpoint": newest.pk if newest else None,
        },
    )
    return result

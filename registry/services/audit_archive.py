"""Archiving a month of the audit trail: one self-contained file that proves itself offline.

A month is a UTC calendar month of `AuditEvent.created_at` (the months of the partitions).
Seals follow commit order, so a month's seals are not a clean seq range at its edges: an event
of the 31st committed just after midnight is sealed among the next month's. The archive holds
the contiguous range [first_seq, last_seq] from the lowest to the highest seal of the month's
events, every seal in it with its event, each marked `in_month` or not; seals of that range
whose month was archived and dropped before are listed by seq with the month that holds them.

The file (gzip, JSON lines):

    {"format": ARCHIVE_FORMAT, "month": "2026-11", "month_start": ..., "month_end": ...,
     "first_seq": ..., "last_seq": ..., "prev_hash": <hash before first_seq>, ...}   header
    {"checkpoint": <checkpoint document>}      every stored checkpoint inside the range
    {"seq": n, "prev_hash": ..., "hash": ..., "sealed_at": ..., "in_month": true,
     "event": {"id": ..., "created_at": ..., ...the sealed columns}}    one per seal, in order
    {"seq": n, "elsewhere": "2026-10"}         a seal archived with an earlier month
    {"end": ..., "statement": ..., "signature": ..., "public_key": ...}    trailer

The trailer's statement (month, range, counts, last hash, SHA-256 of every line before it) is
signed with the registry's Ed25519 checkpoint key: an edited header, a line removed, added or
changed, or a cut file fails; so does a seal that does not recompute with the sealing key, a
checkpoint whose signature fails or whose (seq, hash) the file's seals do not have.
`audit_archive_verify` needs no database: the sealing key (REGISTRY_AUDIT_SEAL_KEY) and the
trusted public keys come from configuration.

If no stored checkpoint falls inside the range, archiving first verifies the live chain
(incrementally) and signs one at the range's last seal. The AuditArchive row is created only
after the written file verified; it is what lets the owner drop the month
(`audit_drop_month`).
"""

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pysodium
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditArchive, AuditCheckpoint, AuditEvent, AuditSeal
from registry.services.audit import (
    AUDIT_EVENT_COLUMNS,
    LATE_COMMIT_WINDOW,
    CheckpointError,
    _signing_keypair,
    audit_record,
    audit_verify,
    checkpoint_document,
    checkpoint_parse,
    checkpoint_sign,
    event_rows,
    event_select,
    row_chain_hash,
    signing_public_key,
)
from registry.sql import compact

ARCHIVE_FORMAT = "consortium-registry-audit-archive/1"
BATCH = 5000


class ArchiveError(ValueError):
    """The month cannot be archived (yet): the message says why, for the operator."""


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC calendar month, as aware datetimes."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = (
        datetime(month.year + 1, 1, 1, tzinfo=UTC)
        if month.month == 12
        else datetime(month.year, month.month + 1, 1, tzinfo=UTC)
    )
    return start, following


def _month_text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


_MONTH_SEALS_SQL = compact(f"""SELECT count(e.id), count(s.seq), min(s.seq), max(s.seq)
    FROM {AuditEvent._meta.db_table} e
    LEFT JOIN {AuditSeal._meta.db_table} s ON s.event_id = e.id
    WHERE e.created_at >= %(start)s AND e.created_at < %(end)s""")  # noqa: S608
_SEALS_SQL = compact(f"""SELECT seq, event_id, prev_hash, hash, sealed_at
    FROM {AuditSeal._meta.db_table} WHERE seq BETWEEN %(first)s AND %(last)s
    ORDER BY seq""")  # noqa: S608
_EVENTS_SQL = compact(f"{event_select()} WHERE e.id = ANY(%(ids)s::bigint[])")


def audit_archive_month(*, actor: Actor, month: date, out_path: str | Path) -> AuditArchive:
    """Write `month`'s archive to `out_path`, verify the file, record it. Refuses a month that
    is not over (plus LATE_COMMIT_WINDOW), that has unsealed events or none, or that is
    already archived."""
    month = month.replace(day=1)
    start, end = month_bounds(month)
    if end > timezone.now() - LATE_COMMIT_WINDOW:
        raise ArchiveError(f"{_month_text(month)} is not over yet")
    if AuditArchive.objects.filter(month=month).exists():
        raise ArchiveError(f"{_month_text(month)} is already archived")
    with connection.cursor() as cursor:
        cursor.execute(_MONTH_SEALS_SQL, {"start": start, "end": end})
        events, sealed, first_seq, last_seq = cursor.fetchone()
    if not events:
        raise ArchiveError(f"{_month_text(month)} has no audit events")
    if sealed != events:
        raise ArchiveError(
            f"{_month_text(month)} has {events - sealed} unsealed events: run the audit_seal job"
        )
    out_path = Path(out_path)
    with transaction.atomic():
        checkpoints = list(
            AuditCheckpoint.objects.filter(seq__gte=first_seq, seq__lte=last_seq).order_by("seq")
        )
        kept = set(
            AuditSeal.objects.filter(seq__in={cp.seq for cp in checkpoints}).values_list(
                "seq", flat=True
            )
        )  # not one at a seal archived (and dropped) with an earlier month
        checkpoints = [cp for cp in checkpoints if cp.seq in kept]
        if not checkpoints:
            checkpoints = [_checkpoint_at(last_seq)]
        last_hash = _write(out_path, month, start, end, first_seq, last_seq, checkpoints)
        report = audit_archive_verify(path=out_path, trusted_public_keys={signing_public_key()})
        if not report.ok or report.events_in_month != events:
            out_path.unlink(missing_ok=True)
            raise ArchiveError(f"the written archive does not verify: {report.problem}")
        archive = AuditArchive.objects.create(
            month=month,
            file_sha256=report.file_sha256,
            first_seq=first_seq,
            last_seq=last_seq,
            last_hash=last_hash,
            events=events,
            archived_at=timezone.now(),
        )
        audit_record(
            actor=actor,
            action=AuditAction.AUDIT_ARCHIVED,
            object_type="audit_archive",
            object_id=str(archive.pk),
            details={
                "month": _month_text(month),
                "first_seq": first_seq,
                "last_seq": last_seq,
                "events": events,
                "file_sha256": report.file_sha256,
            },
        )
    return archive


def _checkpoint_at(seq: int) -> AuditCheckpoint:
    """No checkpoint inside the range: verify the live chain, then sign its seal `seq`."""
    result = audit_verify(incremental=True)
    if not result.ok:
        raise ArchiveError(f"the audit trail does not verify: {result.problem}")
    seal_hash = AuditSeal.objects.filter(seq=seq).values_list("hash", flat=True).get()
    return checkpoint_sign(seq=seq, seal_hash=seal_hash, now=timezone.now())


def _json_line(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"


def _write(path, month, start, end, first_seq, last_seq, checkpoints) -> str:
    """Write the file next to `path` and move it there; returns the last seal's hash."""
    archives = list(AuditArchive.objects.values_list("month", "first_seq", "last_seq"))
    digest = hashlib.sha256()
    counts = {"seals": 0, "elsewhere": 0, "events_in_month": 0}
    last_hash = prev_hash = ""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-archive-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:

            def emit(value: dict) -> None:
                line = _json_line(value)
                digest.update(line)
                out.write(line)

            first = AuditSeal.objects.filter(seq__gte=first_seq).order_by("seq").first()
            prev_hash = first.prev_hash if first and first.seq == first_seq else ""
            emit(
                {
                    "format": ARCHIVE_FORMAT,
                    "month": _month_text(month),
                    "month_start": start.isoformat(),
                    "month_end": end.isoformat(),
                    "first_seq": first_seq,
                    "last_seq": last_seq,
                    "prev_hash": prev_hash,
                    "unkeyed_seals_until": settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL,
                    "written_at": timezone.now().astimezone(UTC).isoformat(),
                    "columns": ["id", *AUDIT_EVENT_COLUMNS],
                }
            )
            for checkpoint in checkpoints:
                emit({"checkpoint": checkpoint_document(checkpoint)})
            expected = first_seq
            for batch_first in range(first_seq, last_seq + 1, BATCH):
                batch_last = min(batch_first + BATCH - 1, last_seq)
                with connection.cursor() as cursor:
                    cursor.execute(_SEALS_SQL, {"first": batch_first, "last": batch_last})
                    seals = cursor.fetchall()
                events = {
                    row["id"]: row
                    for row in event_rows(_EVENTS_SQL, {"ids": [seal[1] for seal in seals]})
                }
                for seq, event_id, seal_prev, seal_hash, sealed_at in seals:
                    while expected < seq:  # a seal of a month archived (and dropped) before
                        emit({"seq": expected, "elsewhere": _archived_in(archives, expected)})
                        counts["elsewhere"] += 1
                        expected += 1
                    event = events.get(event_id)
                    if event is None:
                        raise ArchiveError(f"sealed event {event_id} (seal {seq}) is missing")
                    in_month = start <= event["created_at"] < end
                    event = {**event, "created_at": event["created_at"].isoformat()}
                    emit(
                        {
                            "seq": seq,
                            "prev_hash": seal_prev,
                            "hash": seal_hash,
                            "sealed_at": sealed_at.astimezone(UTC).isoformat(),
                            "in_month": in_month,
                            "event": event,
                        }
                    )
                    counts["seals"] += 1
                    counts["events_in_month"] += in_month
                    last_hash = seal_hash
                    expected = seq + 1
            while expected <= last_seq:
                emit({"seq": expected, "elsewhere": _archived_in(archives, expected)})
                counts["elsewhere"] += 1
                expected += 1
            statement = archive_statement(
                month=_month_text(month),
                first_seq=first_seq,
                last_seq=last_seq,
                last_hash=last_hash,
                lines_sha256=digest.hexdigest(),
                **counts,
            )
            public_key, secret_key = _signing_keypair(settings.REGISTRY_AUDIT_SIGNING_SEED)
            out.write(
                _json_line(
                    {
                        "end": True,
                        "statement": statement.decode(),
                        "public_key": public_key.hex(),
                        "signature": pysodium.crypto_sign_detached(statement, secret_key).hex(),
                    }
                )
            )
        os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return last_hash


def _archived_in(archives, seq: int) -> str:
    for month, first, last in archives:
        if first <= seq <= last:
            return _month_text(month)
    raise ArchiveError(f"seal {seq} is missing and no archived month holds it")


def archive_statement(
    *,
    month: str,
    first_seq: int,
    last_seq: int,
    last_hash: str,
    seals: int,
    elsewhere: int,
    events_in_month: int,
    lines_sha256: str,
) -> bytes:
    """The exact bytes the trailer's signature covers (one line, like a checkpoint's)."""
    return (
        f"{ARCHIVE_FORMAT} month={month} first_seq={first_seq} last_seq={last_seq} "
        f"last_hash={last_hash} seals={seals} elsewhere={elsewhere} "
        f"events_in_month={events_in_month} lines_sha256={lines_sha256}"
    ).encode()


# --- Offline verification ---------------------------------------------------------------------
@dataclass
class ArchiveReport:
    ok: bool
    problem: str = ""
    month: str = ""
    first_seq: int = 0
    last_seq: int = 0
    seals: int = 0
    elsewhere: int = 0
    events_in_month: int = 0
    checkpoints: int = 0
    first_bad_event_id: int | None = None
    bad_seq: int | None = None
    file_sha256: str = ""


class _Bad(Exception):
    def __init__(self, problem: str, *, event_id: int | None = None, seq: int | None = None):
        super().__init__(problem)
        self.problem, self.event_id, self.seq = problem, event_id, seq


def audit_archive_verify(*, path: str | Path, trusted_public_keys: set[str]) -> ArchiveReport:
    """Verify an archive file with the configured sealing key and `trusted_public_keys`
    alone (no database): every seal recomputed and linked, the month marks true, every
    checkpoint signed by a trusted key and matching the file's seal, the signed trailer
    matching what the file holds. Names the first bad event."""
    report = ArchiveReport(ok=False)
    file_digest = hashlib.sha256()
    try:
        with open(path, "rb") as raw:
            for chunk in iter(lambda: raw.read(1 << 20), b""):
                file_digest.update(chunk)
        report.file_sha256 = file_digest.hexdigest()
        with gzip.open(path, "rb") as lines:
            _verify_lines(lines, report, trusted_public_keys, str(path))
    except _Bad as bad:
        report.problem, report.first_bad_event_id = bad.problem, bad.event_id
        report.bad_seq = bad.seq
        return report
    except (OSError, EOFError, zlib.error) as exc:
        report.problem = f"the file cannot be read to its end (truncated or corrupt: {exc})"
        return report
    report.ok = True
    return report


def _verify_lines(lines, report: ArchiveReport, trusted: set[str], source: str) -> None:
    digest = hashlib.sha256()

    def parse(line: bytes) -> dict:
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise _Bad("a line is not JSON: the file was edited or is corrupt") from exc
        if not isinstance(value, dict):
            raise _Bad("a line is not a JSON object: the file was edited")
        return value

    header_line = lines.readline()
    header = parse(header_line) if header_line else {}
    if header.get("format") != ARCHIVE_FORMAT:
        raise _Bad("not a registry audit archive")
    digest.update(header_line)
    try:
        report.month = header["month"]
        report.first_seq, report.last_seq = int(header["first_seq"]), int(header["last_seq"])
        start = datetime.fromisoformat(header["month_start"])
        end = datetime.fromisoformat(header["month_end"])
        prev_hash = header["prev_hash"]
    except (KeyError, TypeError, ValueError) as exc:
        raise _Bad("the header is incomplete") from exc
    unkeyed = header.get("unkeyed_seals_until", 0)
    if unkeyed != settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL:
        raise _Bad(
            f"the archive was sealed with REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL={unkeyed}, "
            f"configured here: {settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL}"
        )
    wanted: dict[int, list] = {}  # seq -> checkpoints stating its hash
    expected, last_hash, linked = report.first_seq, "", bool(prev_hash)
    trailer = None
    for line in lines:
        value = parse(line)
        if "end" in value:
            trailer = value
            break
        digest.update(line)
        if "checkpoint" in value:
            if expected != report.first_seq:
                raise _Bad("a checkpoint among the seals: the file was edited")
            try:
                checkpoint = checkpoint_parse(
                    json.dumps(value["checkpoint"]), trusted_public_keys=trusted, source=source
                )
            except CheckpointError as exc:
                raise _Bad(f"a checkpoint is refused: {exc}") from exc
            if not report.first_seq <= checkpoint.seq <= report.last_seq:
                raise _Bad(f"the checkpoint of seal {checkpoint.seq} is outside the archive")
            wanted.setdefault(checkpoint.seq, []).append(checkpoint)
            continue
        seq = value.get("seq")
        event = value.get("event") or {}
        event_id = event.get("id") if isinstance(event, dict) else None
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                problem = f"seal {expected} is missing: removed before event {event_id}"
            else:
                problem = f"seal {seq} is out of place (expected {expected}): inserted"
            raise _Bad(problem, event_id=event_id, seq=expected)
        if seq > report.last_seq:
            raise _Bad("seals after the archive's last one: inserted", event_id=event_id, seq=seq)
        expected += 1
        if "elsewhere" in value:
            if seq in wanted:
                raise _Bad(f"a checkpoint names seal {seq}, which is not in the file", seq=seq)
            report.elsewhere += 1
            linked = False  # the next seal links to a seal of another archive
            continue
        try:
            sealed_prev, sealed_hash = value["prev_hash"], value["hash"]
            in_month = value["in_month"]
            created_at = datetime.fromisoformat(event["created_at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _Bad("a seal line is incomplete", event_id=event_id, seq=seq) from exc
        if linked and sealed_prev != prev_hash:
            raise _Bad(
                "the seal does not link to the one before it: a seal was edited",
                event_id=event_id,
                seq=seq,
            )
        try:
            recomputed = row_chain_hash(sealed_prev, event, seq)
        except (KeyError, TypeError) as exc:
            raise _Bad("the event is incomplete", event_id=event_id, seq=seq) from exc
        if recomputed != sealed_hash:
            problem = "event does not match its seal: it was edited"
            if seq == report.first_seq:
                problem += " (or REGISTRY_AUDIT_SEAL_KEY is not the key that sealed the trail)"
            raise _Bad(problem, event_id=event_id, seq=seq)
        if in_month is not (start <= created_at < end):
            raise _Bad("the event's month mark is wrong: edited", event_id=event_id, seq=seq)
        for checkpoint in wanted.get(seq, ()):
            if checkpoint.hash != sealed_hash:
                raise _Bad(
                    f"the checkpoint of {checkpoint.time} does not match seal {seq}: "
                    "sealed history was rewritten at or before this event",
                    event_id=event_id,
                    seq=seq,
                )
            report.checkpoints += 1
        report.seals += 1
        report.events_in_month += in_month
        prev_hash = last_hash = sealed_hash
        linked = True
    if trailer is None:
        raise _Bad("the file ends before its signed trailer: truncated", seq=expected)
    if expected != report.last_seq + 1:
        raise _Bad(f"seal {expected} is missing: the file was truncated", seq=expected)
    if not report.checkpoints:
        raise _Bad("no trusted checkpoint covers the archive")
    statement = archive_statement(
        month=report.month,
        first_seq=report.first_seq,
        last_seq=report.last_seq,
        last_hash=last_hash,
        seals=report.seals,
        elsewhere=report.elsewhere,
        events_in_month=report.events_in_month,
        lines_sha256=digest.hexdigest(),
    )
    public_key = str(trailer.get("public_key", ""))
    if public_key.lower() not in {key.lower() for key in trusted}:
        raise _Bad("the trailer is signed by a key this registry does not trust")
    try:
        pysodium.crypto_sign_verify_detached(
            bytes.fromhex(str(trailer.get("signature", ""))), statement, bytes.fromhex(public_key)
        )
    except ValueError as exc:
        raise _Bad(
            "the signed trailer does not match the file: header, lines or counts were edited"
        ) from exc
    if lines.readline():
        raise _Bad("lines after the signed trailer: inserted")

"""The audit trail at scale: months archived to files that verify offline, incremental
verification from the newest verified checkpoint, and --full across dropped months."""

import gzip
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import (
    AuditArchive,
    AuditCheckpoint,
    AuditEvent,
    AuditSeal,
    AuditVerification,
)
from registry.services.audit import (
    audit_checkpoint,
    audit_record,
    audit_seal,
    audit_verify,
    chain_hash,
)
from registry.services.audit_archive import (
    ArchiveError,
    audit_archive_month,
    audit_archive_verify,
    month_bounds,
)
from tests.support.audit import events, tampering

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def months_ago(count: int) -> date:
    today = timezone.now().date().replace(day=1)
    for _ in range(count):
        today = (today - timedelta(days=1)).replace(day=1)
    return today


def event_in(month: date, n: int) -> AuditEvent:
    """An event recorded now, then backdated into `month` (as a superuser could; here only to
    make history)."""
    event = audit_record(actor=Actor.system(), action="test.event", details={"n": n})
    moment = month_bounds(month)[0] + timedelta(days=10, minutes=n)
    with tampering():
        AuditEvent.objects.filter(pk=event.pk).update(created_at=moment)
    return event


def verify_command(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
        return 0, out.getvalue()
    except SystemExit as exc:
        return exc.code, err.getvalue()


@pytest.fixture
def two_months():
    """Events of two past months, sealed in one run so that an event of the later month is
    sealed among the earlier month's (a boundary seal, as commit order makes them)."""
    older, newer = months_ago(2), months_ago(1)
    made = [event_in(older, 0), event_in(older, 1), event_in(newer, 2), event_in(older, 3)]
    made += [event_in(newer, 4), event_in(newer, 5)]
    audit_seal()
    return older, newer, made


def archive(month: date, tmp_path: Path) -> tuple[AuditArchive, Path]:
    path = tmp_path / f"audit-{month:%Y-%m}.jsonl.gz"
    return audit_archive_month(actor=Actor.system(), month=month, out_path=path), path


def read_lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def write_lines(path: Path, lines: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as file:
        for line in lines:
            file.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")


def seal_of(event: AuditEvent) -> AuditSeal:
    return AuditSeal.objects.get(event_id=event.pk)


# --- Archiving ---------------------------------------------------------------------------------


def test_it_archives_a_month_with_its_boundary_seals_and_a_signed_checkpoint(two_months, tmp_path):
    older, _newer, made = two_months
    record, path = archive(older, tmp_path)
    seqs = [seal_of(e).seq for e in (made[0], made[1], made[3])]
    assert (record.first_seq, record.last_seq, record.events) == (min(seqs), max(seqs), 3)
    assert record.last_hash == AuditSeal.objects.get(seq=record.last_seq).hash
    lines = read_lines(path)
    seals = [line for line in lines if "event" in line]
    # The contiguous range, the newer month's boundary seal included and marked.
    assert [s["seq"] for s in seals] == list(range(record.first_seq, record.last_seq + 1))
    assert [s["in_month"] for s in seals] == [True, True, False, True]
    # No checkpoint covered the range: one was signed at its last seal.
    (checkpoint,) = [line["checkpoint"] for line in lines if "checkpoint" in line]
    assert (checkpoint["seq"], checkpoint["hash"]) == (record.last_seq, record.last_hash)
    assert AuditCheckpoint.objects.filter(seq=record.last_seq).exists()
    assert events(AuditAction.AUDIT_ARCHIVED, object_id=str(record.pk)).exists()
    code, output = verify_command("--archive", str(path))
    assert code == 0 and "Archive intact" in output and record.file_sha256 in output
    assert audit_verify().ok  # the checkpoint it signed is a true statement of the chain


def test_it_uses_a_checkpoint_already_inside_the_range(two_months, tmp_path):
    older, _newer, _made = two_months
    audit_checkpoint(force=True)  # the head: after the older month's range
    head = AuditSeal.objects.order_by("-seq").first()
    with tampering():  # sign one inside the range instead (as the hourly job would have)
        AuditCheckpoint.objects.all().delete()
    from registry.services.audit import checkpoint_sign

    inside = checkpoint_sign(seq=2, seal_hash=AuditSeal.objects.get(seq=2).hash, now=timezone.now())
    record, path = archive(older, tmp_path)
    assert head.seq > record.last_seq
    assert [line["checkpoint"]["seq"] for line in read_lines(path) if "checkpoint" in line] == [
        inside.seq
    ]
    assert AuditCheckpoint.objects.count() == 1


def test_it_refuses_a_month_not_over_unsealed_or_already_archived(two_months, tmp_path):
    older, _newer, _made = two_months
    with pytest.raises(ArchiveError, match="not over"):
        archive(timezone.now().date().replace(day=1), tmp_path)
    event_in(older, 9)  # not sealed yet
    with pytest.raises(ArchiveError, match="unsealed"):
        archive(older, tmp_path)
    audit_seal()
    archive(older, tmp_path)
    with pytest.raises(ArchiveError, match="already archived"):
        archive(older, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "audit_archive", "--month", f"{older:%Y-%m}", "--out", str(tmp_path / "x.gz"),
            stdout=out, stderr=err,
        )  # fmt: skip
    assert "already archived" in err.getvalue()


def test_it_verifies_an_archive_without_any_database(two_months, tmp_path):
    """The real command in a fresh process whose DATABASE_URL points nowhere."""
    older, _newer, _made = two_months
    _record, path = archive(older, tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nowhere",
        "REGISTRY_ENV": "test",
        "REGISTRY_AUDIT_SEAL_KEY": settings.REGISTRY_AUDIT_SEAL_KEY,
        "REGISTRY_AUDIT_SIGNING_SEED": settings.REGISTRY_AUDIT_SIGNING_SEED,
    }
    command = [sys.executable, "manage.py", "verify_audit", "--archive", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Archive intact" in done.stdout
    # And a tampered copy fails there too.
    lines = read_lines(path)
    next(line for line in lines if "event" in line)["event"]["details"] = {"n": 99}
    write_lines(path, lines)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "BROKEN" in done.stderr


def tamper_event(lines, seq):
    line = next(line for line in lines if line.get("seq") == seq)
    line["event"]["details"] = {"n": 99}


def tamper_seal_hash(lines, seq):
    next(line for line in lines if line.get("seq") == seq)["hash"] = "ab" * 32


def remove_seal(lines, seq):
    lines.remove(next(line for line in lines if line.get("seq") == seq))


def insert_seal(lines, seq):
    line = next(line for line in lines if line.get("seq") == seq)
    lines.insert(lines.index(line), dict(line))


def forge_checkpoint(lines, seq):
    next(line for line in lines if "checkpoint" in line)["checkpoint"]["hash"] = "cd" * 32


def flip_month_mark(lines, seq):
    line = next(line for line in lines if line.get("seq") == seq)
    line["in_month"] = not line["in_month"]


def drop_trailer(lines, seq):
    lines.pop()


def drop_last_seal_and_trailer(lines, seq):
    del lines[-2:]


@pytest.mark.parametrize(
    ("tamper", "expected", "bad_event"),
    [
        (tamper_event, "edited", 1),
        (tamper_seal_hash, "edited", 1),
        (remove_seal, "missing", 2),  # the removed event is not there to name: the next one
        (insert_seal, "inserted", 1),
        (forge_checkpoint, "checkpoint is refused", None),
        (flip_month_mark, "month mark", 1),
        (drop_trailer, "truncated", None),
        (drop_last_seal_and_trailer, "truncated", None),
    ],
)
def test_it_names_the_first_bad_event_of_a_tampered_archive(
    two_months, tmp_path, tamper, expected, bad_event
):
    older, _newer, made = two_months
    record, path = archive(older, tmp_path)
    target = seal_of(made[1])
    lines = read_lines(path)
    tamper(lines, target.seq)
    write_lines(path, lines)
    report = audit_archive_verify(path=path, trusted_public_keys={_public_key()})
    assert not report.ok and expected in report.problem
    if bad_event is not None:
        assert report.first_bad_event_id == made[bad_event].pk
    code, output = verify_command("--archive", str(path))
    assert code == 1 and "Archive BROKEN" in output and expected in output
    assert record.pk  # the database's record is untouched by an edited file


def _public_key() -> str:
    from registry.services.audit import signing_public_key

    return signing_public_key()


def test_it_refuses_a_file_cut_short_and_a_rewritten_trailer(two_months, tmp_path):
    older, _newer, _made = two_months
    _record, path = archive(older, tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    report = audit_archive_verify(path=path, trusted_public_keys={_public_key()})
    assert not report.ok and "truncated" in report.problem
    # What no seal covers (the header, a seal's time) is covered by the signed trailer.
    path.write_bytes(whole)
    for edit in ("header", "sealed_at"):
        lines = read_lines(path)
        if edit == "header":
            lines[0]["written_at"] = "2020-01-01T00:00:00+00:00"
        else:
            next(line for line in lines if "event" in line)["sealed_at"] = "2020-01-01T00:00:00"
        write_lines(tmp_path / "edited.gz", lines)
        edited = tmp_path / "edited.gz"
        report = audit_archive_verify(path=edited, trusted_public_keys={_public_key()})
        assert not report.ok and "signed trailer" in report.problem


# --- Incremental verification --------------------------------------------------------------


def some_events(count: int) -> list[AuditEvent]:
    return [
        audit_record(actor=Actor.system(), action="test.event", details={"n": n})
        for n in range(count)
    ]


@pytest.fixture
def verified_anchor():
    """Events sealed and checkpointed, verified once (the anchor), then more events sealed."""
    before = some_events(4)
    audit_seal()
    anchor = audit_checkpoint(force=True)
    assert verify_command()[0] == 0
    assert AuditVerification.objects.get().seq == anchor.seq
    after = some_events(3)
    audit_seal()
    return before, anchor, after


def test_it_walks_only_the_seals_after_the_verified_checkpoint(verified_anchor):
    _before, anchor, _after = verified_anchor
    code, output = verify_command()
    head = AuditSeal.objects.order_by("-seq").first().seq
    assert code == 0 and f"seals {anchor.seq + 1}-{head}" in output and "incremental" in output
    assert f"after the checkpoint verified at seal {anchor.seq}" in output
    result = audit_verify(incremental=True)
    assert result.ok and result.anchor_seq == anchor.seq and result.checked == head - anchor.seq


def test_it_misses_an_edit_before_the_anchor_until_a_full_walk(verified_anchor):
    """The trade-off (docs/security.md): an incremental run proves the seals after its anchor
    and that the anchor's seal still has its signed hash; an event edited before the anchor
    (without re-sealing) is found only by --full."""
    before, _anchor, _after = verified_anchor
    with tampering():
        AuditEvent.objects.filter(pk=before[1].pk).update(details={"n": 99})
    assert verify_command()[0] == 0
    code, output = verify_command("--full")
    assert code == 1 and f"event {before[1].pk}" in output and "edited" in output


def test_it_finds_an_edit_after_the_anchor_incrementally(verified_anchor):
    _before, _anchor, after = verified_anchor
    with tampering():
        AuditEvent.objects.filter(pk=after[1].pk).update(details={"n": 99})
    code, output = verify_command()
    assert code == 1 and f"event {after[1].pk}" in output and "edited" in output


def test_it_refuses_a_chain_resealed_under_a_verified_checkpoint(verified_anchor):
    """Someone with the sealing key edits an early event and re-seals everything, leaving the
    stored checkpoints and verifications in place: the anchor's seal lost its signed hash."""
    before, anchor, _after = verified_anchor
    with tampering():
        AuditEvent.objects.filter(pk=before[0].pk).update(details={"n": 99})
        seals = list(AuditSeal.objects.order_by("seq"))
        AuditSeal.objects.all().delete()
        prev = "0" * 64
        for seal in seals:
            seal.prev_hash = prev
            seal.hash = prev = chain_hash(prev, AuditEvent.objects.get(pk=seal.event_id), seal.seq)
        AuditSeal.objects.bulk_create(seals)
    code, output = verify_command()
    assert code == 1 and "rewritten" in output and f"seal {anchor.seq}" in output
    assert verify_command("--full")[0] == 1


def test_it_falls_back_to_a_full_walk_without_a_trustworthy_anchor(verified_anchor):
    before, _anchor, _after = verified_anchor
    with tampering():  # the anchor's checkpoint removed: its verification proves nothing
        AuditCheckpoint.objects.all().delete()
        AuditEvent.objects.filter(pk=before[1].pk).update(details={"n": 99})
    code, output = verify_command()
    assert code == 1 and f"event {before[1].pk}" in output


# --- Dropped months ------------------------------------------------------------------------


def drop_month(month: date) -> None:
    """What the owner's audit_drop_month does to the rows: the month's events and their
    seals are gone (here with the triggers bypassed instead of a partition dropped)."""
    start, end = month_bounds(month)
    ids = list(
        AuditEvent.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "pk", flat=True
        )
    )
    with tampering():
        AuditSeal.objects.filter(event_id__in=ids).delete()
        AuditEvent.objects.filter(pk__in=ids).delete()


def test_it_verifies_in_full_across_an_archived_and_dropped_month(two_months, tmp_path):
    older, newer, made = two_months
    record, _path = archive(older, tmp_path)
    audit_seal()
    drop_month(older)
    assert AuditSeal.objects.filter(event_id=made[2].pk).exists()  # the boundary seal stays
    code, output = verify_command("--full")
    assert code == 0 and "intact" in output and "3 seals in archived months" in output
    result = audit_verify()
    assert result.ok and result.archived == 3
    # The next month's archive lists the seals held by the earlier one.
    audit_seal()
    later, path = archive(newer, tmp_path)
    report = audit_archive_verify(path=path, trusted_public_keys={_public_key()})
    assert report.ok and report.events_in_month == 3
    assert (later.first_seq, later.last_seq) == (seal_of(made[2]).seq, seal_of(made[5]).seq)
    assert report.elsewhere == 1 == record.last_seq - later.first_seq  # the older month's last


def test_it_fails_in_full_when_a_month_is_gone_without_an_archive(two_months):
    older, _newer, _made = two_months
    drop_month(older)
    code, output = verify_command("--full")
    assert code == 1 and "missing" in output
    assert not audit_verify().ok


def test_the_archive_record_starts_before_the_first_kept_seal(two_months, tmp_path):
    older, _newer, _made = two_months
    record, _path = archive(older, tmp_path)
    assert record.first_seq == 1 and record.archived_at <= datetime.now(UTC)


# --- The sealer's frontier -----------------------------------------------------------------


def test_it_seals_a_late_commit_in_a_gap_the_frontier_noticed(frozen_now):
    some_events(1)
    audit_seal()  # the frontier exists from here on

    some_events(1)
    try:
        with transaction.atomic():  # an id taken and given back: a gap below the next events
            free_id = some_events(1)[0].pk
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    some_events(2)
    sealed_before = AuditSeal.objects.count()
    assert audit_seal() == 3
    with tampering():  # only to choose the id: an ordinary commit that took it earlier
        AuditEvent.objects.create(
            id=free_id, created_at=timezone.now(), actor_type="system", action="test.late"
        )
    assert audit_seal() == 1
    assert AuditSeal.objects.get(event_id=free_id).seq == sealed_before + 4
    assert audit_verify().ok


def test_it_gives_up_a_gap_after_the_late_commit_window(frozen_now):
    some_events(1)
    audit_seal()

    try:
        with transaction.atomic():
            free_id = some_events(1)[0].pk
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    some_events(1)
    audit_seal()
    frozen_now.advance(hours=2)
    with tampering():  # squeezed in later, backdated: no transaction lasts that long
        AuditEvent.objects.create(
            id=free_id,
            created_at=timezone.now() - timedelta(hours=2),
            actor_type="system",
            action="test.forged",
        )
    audit_seal()
    assert not AuditSeal.objects.filter(event_id=free_id).exists()
    result = audit_verify()
    assert not result.ok and result.first_bad_event_id == free_id and "inserted" in result.problem

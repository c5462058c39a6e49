"""The audit trail: append-only in the database, chained by hash, verified end to end."""

import hashlib
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pysodium
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditCheckpoint, AuditEvent, AuditSeal
from registry.services.audit import (
    GENESIS_HASH,
    audit_checkpoint,
    audit_record,
    audit_seal,
    audit_seal_lag_seconds,
    audit_verify,
    chain_hash,
    checkpoint_message,
    checkpoint_parse,
    event_digest_input,
    signing_public_key,
)
from registry.services.jobs import job_execute
from tests.support.audit import tampering

pytestmark = pytest.mark.django_db


def record_events(n: int, *, age: timedelta = timedelta(minutes=5)) -> list[AuditEvent]:
    events = [
        audit_record(actor=Actor.system(), action="test.event", details={"n": i}) for i in range(n)
    ]
    # Backdate them (before the triggers see an UPDATE: done as a bypass, like an attacker)
    with tampering():
        AuditEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            created_at=timezone.now() - age
        )
    return events


def verify_command(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
        return 0, out.getvalue()
    except SystemExit as exc:
        return exc.code, err.getvalue()


def test_it_refuses_update_and_delete_of_an_event():
    event = audit_record(actor=Actor.system(), action="test.event")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="test.changed")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE registry_auditevent CASCADE")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_it_refuses_update_and_delete_of_a_seal():
    record_events(2)
    assert audit_seal() == AuditEvent.objects.count()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditSeal.objects.update(hash="0" * 64)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditSeal.objects.all().delete()


def test_it_seals_and_verifies_an_intact_chain():
    record_events(5)
    sealed = audit_seal()
    assert sealed == AuditEvent.objects.count()
    assert audit_seal() == 0  # nothing left
    result = audit_verify()
    assert result.ok and result.checked == sealed and result.unsealed == 0
    code, output = verify_command()
    assert code == 0 and "intact" in output


def test_it_detects_an_edited_event():
    events = record_events(5)
    audit_seal()
    with tampering():
        AuditEvent.objects.filter(pk=events[2].pk).update(details={"n": 99})
    result = audit_verify()
    assert not result.ok and result.first_bad_event_id == events[2].pk
    code, output = verify_command()
    assert code == 1 and f"event {events[2].pk}" in output and "edited" in output


def test_it_detects_a_deleted_event():
    events = record_events(5)
    audit_seal()
    with tampering():
        AuditEvent.objects.filter(pk=events[3].pk).delete()
    result = audit_verify()
    assert not result.ok and result.first_bad_event_id == events[3].pk
    assert verify_command()[0] == 1


def test_it_detects_a_deleted_event_and_its_seal():
    events = record_events(5)
    audit_seal()
    with tampering():
        AuditSeal.objects.filter(event_id=events[1].pk).delete()
        AuditEvent.objects.filter(pk=events[1].pk).delete()
    result = audit_verify()
    assert not result.ok and "missing" in result.problem
    assert result.first_bad_event_id == events[2].pk


def events_around_a_free_id(*, age: timedelta) -> int:
    """Sealed events with an unused id among them (a rolled-back insert); returns that id."""
    record_events(2, age=age)
    try:
        with transaction.atomic():
            free_id = audit_record(actor=Actor.system(), action="test.rolled_back").pk
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    record_events(2, age=age)
    audit_seal()
    return free_id


def test_it_detects_an_inserted_event():
    free_id = events_around_a_free_id(age=timedelta(hours=3))
    # A backdated event squeezed in among the sealed ones.
    with tampering():
        AuditEvent.objects.create(
            id=free_id,
            created_at=timezone.now() - timedelta(hours=2),
            actor_type="system",
            action="test.forged",
        )
    result = audit_verify()
    assert not result.ok and "inserted" in result.problem
    assert result.first_bad_event_id == free_id
    assert verify_command()[0] == 1


def test_it_detects_an_inserted_event_with_a_forged_seal():
    events = record_events(3)
    audit_seal()
    forged = audit_record(actor=Actor.system(), action="test.forged")
    last = AuditSeal.objects.order_by("-seq").first()
    # The forger appends a seal with a made-up hash: the chain no longer matches.
    AuditSeal.objects.create(
        seq=last.seq + 1,
        event_id=forged.pk,
        event_created_at=forged.created_at,
        prev_hash=last.hash,
        hash="f" * 64,
        sealed_at=timezone.now(),
    )
    result = audit_verify()
    assert not result.ok and result.first_bad_event_id == forged.pk
    assert events  # the honest events before it verified


def test_it_seals_a_late_commit_below_sealed_ids():
    """A transaction that took a lower id and committed after a seal is sealed, not flagged."""
    free_id = events_around_a_free_id(age=timedelta(minutes=1))
    with tampering():  # only to choose the id; the row is an ordinary recent event
        AuditEvent.objects.create(
            id=free_id,
            created_at=timezone.now() - timedelta(seconds=30),
            actor_type="system",
            action="test.late",
        )
    assert audit_verify().ok  # within the late-commit window: pending, not suspicious
    assert audit_seal() == 1
    result = audit_verify()
    assert result.ok and result.unsealed == 0


def test_it_reports_the_seal_lag():
    record_events(1, age=timedelta(minutes=10))
    assert audit_seal_lag_seconds() >= 600
    audit_seal()
    assert audit_seal_lag_seconds() == 0


# --- Keyed seals and signed checkpoints (issue 13) -------------------------------------------


def plain_sha256_seal(prev_hash: str, event: AuditEvent, seq: int) -> str:
    """The seal as it was computed before keyed sealing: anyone can compute it."""
    h = hashlib.sha256()
    h.update(prev_hash.encode())
    h.update(event_digest_input(event))
    h.update(str(seq).encode())
    return h.hexdigest()


def rechain_from_genesis(seal_function) -> None:
    """What a database superuser does to hide an edit: triggers off, every seal (and every
    stored checkpoint) deleted, the chain recomputed from genesis over the edited events."""
    with tampering():
        AuditCheckpoint.objects.all().delete()
        AuditSeal.objects.all().delete()
        prev_hash, seals = GENESIS_HASH, []
        for seq, event in enumerate(AuditEvent.objects.order_by("id"), start=1):
            seal_hash = seal_function(prev_hash, event, seq)
            seals.append(
                AuditSeal(
                    seq=seq,
                    event_id=event.pk,
                    event_created_at=event.created_at,
                    prev_hash=prev_hash,
                    hash=seal_hash,
                    sealed_at=timezone.now(),
                )
            )
            prev_hash = seal_hash
        AuditSeal.objects.bulk_create(seals)


@pytest.fixture
def checkpoint_dir(settings, tmp_path):
    settings.REGISTRY_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def checkpoint_file(folder: Path) -> Path:
    """The one checkpoint file the sealer wrote, copied out (as an auditor keeps it)."""
    (written,) = folder.glob("audit-checkpoint-*.json")
    kept = folder.parent / "kept-elsewhere.json"
    shutil.copy(written, kept)
    return kept


def test_it_detects_a_trail_resealed_from_genesis_with_plain_sha256():
    events = record_events(5)
    audit_seal()
    with tampering():
        AuditEvent.objects.filter(pk=events[2].pk).update(details={"n": 99})
    rechain_from_genesis(plain_sha256_seal)
    result = audit_verify()
    assert not result.ok and "edited" in result.problem
    assert verify_command()[0] == 1


def test_it_detects_a_chain_rewritten_with_the_sealing_key_against_an_earlier_checkpoint(
    checkpoint_dir,
):
    events = record_events(5)
    audit_seal()
    assert audit_checkpoint(force=True) is not None
    kept = checkpoint_file(checkpoint_dir)
    assert verify_command("--checkpoint", str(kept))[0] == 0
    # The attacker knows the sealing key (chain_hash is the registry's own function).
    with tampering():
        AuditEvent.objects.filter(pk=events[2].pk).update(details={"n": 99})
    rechain_from_genesis(chain_hash)
    audit_seal()
    assert verify_command()[0] == 0  # the database alone cannot tell
    code, output = verify_command("--checkpoint", str(kept))
    assert code == 1 and "rewritten" in output
    assert not audit_verify(checkpoints=(parsed(kept),)).ok


def test_it_detects_sealed_events_removed_after_a_checkpoint(checkpoint_dir):
    events = record_events(5)
    audit_seal()
    audit_checkpoint(force=True)
    kept = checkpoint_file(checkpoint_dir)
    with tampering():
        AuditEvent.objects.filter(pk__in=[e.pk for e in events[3:]]).delete()
    rechain_from_genesis(chain_hash)
    code, output = verify_command("--checkpoint", str(kept))
    assert code == 1 and "removed" in output


def parsed(path: Path):
    return checkpoint_parse(
        path.read_text(), trusted_public_keys={signing_public_key()}, source=str(path)
    )


def test_it_refuses_a_tampered_checkpoint_file(checkpoint_dir):
    record_events(3)
    audit_seal()
    audit_checkpoint(force=True)
    kept = checkpoint_file(checkpoint_dir)
    document = json.loads(kept.read_text())
    forged = kept.parent / "forged.json"
    for field, value in (("hash", "ab" * 32), ("seq", 2), ("time", "2020-01-01T00:00:00Z")):
        forged.write_text(json.dumps({**document, field: value}))
        code, output = verify_command("--checkpoint", str(forged))
        assert code == 1 and "REFUSED" in output and "signature does not verify" in output
    # Signed, but by a key of the forger's own making.
    public_key, secret_key = pysodium.crypto_sign_seed_keypair(b"\x55" * 32)
    message = checkpoint_message(seq=1, hash="cd" * 32, time=document["time"])
    own = {
        **document,
        "seq": 1,
        "hash": "cd" * 32,
        "public_key": public_key.hex(),
        "signature": pysodium.crypto_sign_detached(message, secret_key).hex(),
    }
    forged.write_text(json.dumps(own))
    code, output = verify_command("--checkpoint", str(forged))
    assert code == 1 and "does not trust" in output
    forged.write_text("not json")
    code, output = verify_command("--checkpoint", str(forged))
    assert code == 1 and "not a registry checkpoint" in output
    assert "not json" not in output


def test_it_writes_a_checkpoint_an_auditor_verifies_with_the_public_key_alone(checkpoint_dir):
    record_events(2)
    audit_seal()
    checkpoint = audit_checkpoint(force=True)
    document = json.loads(checkpoint_file(checkpoint_dir).read_text())
    head = AuditSeal.objects.order_by("-seq").first()
    assert (document["seq"], document["hash"]) == (head.seq, head.hash)
    assert document["public_key"] == signing_public_key()
    assert document["key_id"] == checkpoint.key_id
    # No registry code: the message as written in the file, the key, the signature.
    assert document["signed_message"] == (
        f"{document['format']} seq={head.seq} hash={head.hash} time={document['time']}"
    )
    pysodium.crypto_sign_verify_detached(
        bytes.fromhex(document["signature"]),
        document["signed_message"].encode(),
        bytes.fromhex(document["public_key"]),
    )
    assert "BEGIN PUBLIC KEY" in document["public_key_pem"]


def test_it_signs_a_checkpoint_at_least_hourly(checkpoint_dir, frozen_now):
    record_events(2)
    job_execute("audit_seal")
    assert AuditCheckpoint.objects.count() == 1  # the first run signs at once
    job_execute("audit_seal")
    frozen_now.advance(minutes=30)
    job_execute("audit_seal")
    assert AuditCheckpoint.objects.count() == 1
    frozen_now.advance(minutes=30)
    details = job_execute("audit_seal")
    assert AuditCheckpoint.objects.count() == 2 and "checkpoint" in details
    newest = AuditCheckpoint.objects.order_by("-id").first()
    # Sealed first, then signed; then the checkpoint's own event was sealed.
    assert newest.seq == AuditSeal.objects.count() - 1
    assert audit_seal_lag_seconds() == 0
    assert len(list(checkpoint_dir.glob("audit-checkpoint-*.json"))) == 2
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_CHECKPOINTED).count() == 2
    assert audit_verify().ok


def test_it_detects_a_forged_or_outdated_stored_checkpoint():
    events = record_events(3)
    audit_seal()
    checkpoint = audit_checkpoint(force=True)
    with tampering():
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(hash="ab" * 32)
    result = audit_verify()
    assert not result.ok and "bad signature" in result.problem
    with tampering():
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(hash=checkpoint.hash)
    assert audit_verify().ok
    # Rewritten with the sealing key but the stored checkpoints left in place.
    with tampering():
        AuditEvent.objects.filter(pk=events[0].pk).update(details={"n": 99})
        AuditSeal.objects.all().delete()
    saved = list(AuditCheckpoint.objects.all())
    rechain_from_genesis(chain_hash)
    with tampering():
        AuditCheckpoint.objects.bulk_create(saved)
    result = audit_verify()
    assert not result.ok and "stored checkpoint" in result.problem


def test_it_needs_the_sealing_key_that_sealed_the_trail(settings):
    record_events(3)
    audit_seal()
    settings.REGISTRY_AUDIT_SEAL_KEY = "66" * 32
    result = audit_verify()
    assert not result.ok and "REGISTRY_AUDIT_SEAL_KEY" in result.problem


def test_it_verifies_seals_made_before_keyed_sealing(settings):
    settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL = 10**9  # as the code before keyed seals did
    record_events(3)
    audit_seal()
    legacy = AuditSeal.objects.count()
    settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL = legacy  # what the operator configures
    record_events(2)
    audit_seal()
    assert audit_verify().ok
    assert AuditSeal.objects.get(seq=legacy + 1).hash != plain_sha256_seal(
        AuditSeal.objects.get(seq=legacy).hash,
        AuditEvent.objects.get(pk=AuditSeal.objects.get(seq=legacy + 1).event_id),
        legacy + 1,
    )
    settings.REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL = 0
    assert not audit_verify().ok


def test_it_prints_a_fresh_checkpoint_for_an_operator_to_keep(tmp_path):
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("audit_checkpoint", stdout=out, stderr=io.StringIO())  # nothing sealed
    record_events(2)
    audit_seal()
    call_command("audit_checkpoint", "--now", stdout=out)
    kept = tmp_path / "mailed.json"
    kept.write_text(out.getvalue())
    assert parsed(kept).seq == AuditSeal.objects.order_by("-seq").first().seq
    assert verify_command("--checkpoint", str(kept))[0] == 0

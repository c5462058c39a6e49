"""The audit trail: append-only in the database, chained by hash, verified end to end."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditEvent, AuditSeal
from registry.services.audit import audit_record, audit_seal, audit_seal_lag_seconds, audit_verify

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


class tampering:
    """Bypass the append-only triggers the way a database superuser could."""

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


def verify_command() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
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

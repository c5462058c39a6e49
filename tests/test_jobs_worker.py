"""The jobs on a REAL Celery worker process consuming from Redis (not eager mode): tasks are
sent through the broker, the worker writes to the test database, the test polls the database
for the outcome (bounded waits, not timed assertions). Time is moved forward through the
tasks' `now_iso`, never slept."""

from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from consortium.celery import app
from registry.models import (
    AuditEvent,
    Case,
    CaseIdentifier,
    CaseStatus,
    IdempotencyKey,
    JobRun,
    Lookup,
    LookupLogEntry,
    OutboxTask,
    Sighting,
)
from tests.factories import lookup
from tests.jobs_data import make_cases, make_lookup_log
from tests.workers import celery_worker_process, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def today():
    return timezone.localdate()


def send(worker, job: str, **kwargs) -> None:
    app.send_task(f"registry.jobs.{job}", kwargs=kwargs, queue=worker.queue)


def wait_for_runs(job: str, count: int = 1, timeout: float = 60) -> list[JobRun]:
    return wait_for(
        lambda: (
            (runs := list(JobRun.objects.filter(job=job, status="succeeded")))
            and len(runs) >= count
            and runs
        ),
        timeout=timeout,
        what=f"{count} finished run(s) of {job}",
    )


def expiry_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="cases.expired").order_by("id"))


def expired_ids_in_events() -> list[str]:
    return [case_id for event in expiry_events() for case_id in event.details["case_ids"]]


def case_state(made) -> tuple[set[str], int]:
    ids = [m.case.pk for m in made]
    return (
        set(Case.objects.filter(pk__in=ids).values_list("status", flat=True)),
        CaseIdentifier.objects.filter(case_id__in=ids).count(),
    )


def test_the_worker_expires_exactly_the_due_digests_and_nothing_else(world):
    member = world.alice.member
    due = make_cases(member, 12, expires_at=today())
    overdue = make_cases(member, 3, expires_at=today() - timedelta(days=40))
    later = make_cases(member, 5, expires_at=today() + timedelta(days=10))
    others = make_cases(world.carol.member, 4, expires_at=today() + timedelta(days=400))

    # Past expires_at, before any job: lookups already show no match.
    probe = [{"kind": k, "token": t} for k, t in due[0].identifiers + later[0].identifiers]
    assert [r["matched"] for r in lookup(world.bob, probe)["results"]] == [False, False, True, True]

    with celery_worker_process(
        queue=unique_queue("expiry"), env={"REGISTRY_JOB_BATCH_SIZE": "5"}
    ) as worker:
        send(worker, "expiry")
        [run] = wait_for_runs("expiry")
        assert run.details["cases_expired"] == 15 and run.details["batches"] == 3
        assert case_state(due + overdue) == ({CaseStatus.EXPIRED}, 0)
        assert case_state(later) == ({CaseStatus.ACTIVE}, 10)
        assert case_state(others) == ({CaseStatus.ACTIVE}, 8)

        # Ten days on (time moved, not slept), the later cases go too, and only they.
        send(worker, "expiry", now_iso=(timezone.now() + timedelta(days=10)).isoformat())
        wait_for_runs("expiry", count=2)
        assert case_state(later) == ({CaseStatus.EXPIRED}, 0)
        assert case_state(others) == ({CaseStatus.ACTIVE}, 8)

    ids = expired_ids_in_events()
    assert len(ids) == len(set(ids)) == 20
    assert set(ids) == {str(m.case.pk) for m in due + overdue + later}
    assert [r["matched"] for r in lookup(world.bob, probe)["results"]] == [False] * 4


def open_transactions_of_others() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
        )
        return [row[0] for row in cursor.fetchall()]


def backend_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 0


def test_a_worker_killed_mid_batch_leaves_nothing_the_next_run_does_not_finish(world):
    due = make_cases(world.alice.member, 20, expires_at=today() - timedelta(days=1))
    later = make_cases(world.alice.member, 3, expires_at=today() + timedelta(days=1))
    slow = {"REGISTRY_JOB_BATCH_SIZE": "5", "REGISTRY_JOB_BATCH_PAUSE_SECONDS": "3"}

    with celery_worker_process(queue=unique_queue("kill"), env=slow) as worker:
        send(worker, "expiry")
        wait_for(expiry_events, what="the first batch to commit")
        # The worker is now inside batch 2: its writes done, its transaction open.
        [backend] = wait_for(open_transactions_of_others, what="batch 2 in flight")
        worker.kill()
    wait_for(lambda: backend_gone(backend), what="PostgreSQL to drop the dead connection")

    # Batch 1 is done, whole; batch 2 never happened; nothing in between.
    [event] = expiry_events()
    first = set(event.details["case_ids"])
    assert len(first) == 5
    for m in due:
        assert case_state([m]) == (
            ({CaseStatus.EXPIRED}, 0) if str(m.case.pk) in first else ({CaseStatus.ACTIVE}, 2)
        )
    assert JobRun.objects.get(job="expiry").status == "running"  # died with the worker

    with celery_worker_process(
        queue=unique_queue("rerun"), env={"REGISTRY_JOB_BATCH_SIZE": "5"}
    ) as worker:
        send(worker, "expiry")
        [run] = wait_for_runs("expiry")
    assert run.details["cases_expired"] == 15
    ids = expired_ids_in_events()
    assert len(ids) == len(set(ids)) == 20  # every due case expired (and audited) once
    assert sum(e.details["cases"] for e in expiry_events()) == 20
    assert case_state(due) == ({CaseStatus.EXPIRED}, 0)
    assert case_state(later) == ({CaseStatus.ACTIVE}, 6)


def test_two_workers_expiring_at_once_give_the_same_result_as_one(world):
    due = make_cases(world.alice.member, 60, expires_at=today())
    later = make_cases(world.alice.member, 5, expires_at=today() + timedelta(days=1))
    env = {"REGISTRY_JOB_BATCH_SIZE": "4", "REGISTRY_JOB_BATCH_PAUSE_SECONDS": "0.1"}

    with (
        celery_worker_process(queue=unique_queue("one"), env=env) as one,
        celery_worker_process(queue=unique_queue("two"), env=env) as two,
    ):
        send(one, "expiry")
        send(two, "expiry")
        runs = wait_for_runs("expiry", count=2)

    assert sum(run.details["cases_expired"] for run in runs) == 60
    ids = expired_ids_in_events()
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {str(m.case.pk) for m in due}
    assert sum(e.details["cases"] for e in expiry_events()) == 60
    assert case_state(due) == ({CaseStatus.EXPIRED}, 0)
    assert case_state(later) == ({CaseStatus.ACTIVE}, 10)


def test_the_worker_purges_the_lookup_log_and_idempotency_keys_on_time(world):
    now = timezone.now()
    make_lookup_log(world.bob.member, at=now - timedelta(days=1))
    IdempotencyKey.objects.create(member=world.alice.member, key="retry-1", request_hash="0" * 64)

    def as_of(delta):
        return (now + delta).isoformat()

    with celery_worker_process(queue=unique_queue("retention")) as worker:
        # Not yet due: 89 days after the lookup, 47 hours after the key.
        send(worker, "lookup_log_retention", now_iso=as_of(timedelta(days=88)))
        send(worker, "idempotency_retention", now_iso=as_of(timedelta(hours=47)))
        wait_for_runs("lookup_log_retention")
        wait_for_runs("idempotency_retention")
        assert Lookup.objects.count() == 1 and LookupLogEntry.objects.count() == 3
        assert Sighting.objects.count() == 3 and IdempotencyKey.objects.count() == 1

        # Due: 91 days after the lookup, 49 hours after the key.
        send(worker, "lookup_log_retention", now_iso=as_of(timedelta(days=90)))
        send(worker, "idempotency_retention", now_iso=as_of(timedelta(hours=49)))
        wait_for_runs("lookup_log_retention", count=2)
        wait_for_runs("idempotency_retention", count=2)

    assert not Lookup.objects.exists() and not LookupLogEntry.objects.exists()
    assert not Sighting.objects.exists() and not IdempotencyKey.objects.exists()


def dead_broker_app() -> Celery:
    """The project's Celery configuration, with the broker on a port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Celery("consortium", broker=f"redis://127.0.0.1:{port}/0")
    dead.config_from_object("django.conf:settings", namespace="CELERY")
    return dead


def test_an_api_write_succeeds_with_the_broker_down_and_is_delivered_later(world, monkeypatch):
    [made] = make_cases(world.alice.member, 1, expires_at=today() + timedelta(days=100))
    monkeypatch.setattr("consortium.celery.app", dead_broker_app())

    response = world.bob.post(
        "/api/v1/disputes",
        {
            "case_id": str(made.case.pk),
            "identifier": dict(zip(("kind", "token"), made.identifiers[0], strict=True)),
            "reason": "not_me",
            "statement": "Not my phone.",
        },
    )

    assert response.status_code == 201, response.content
    [row] = OutboxTask.objects.filter(task="registry.disputes.send_filed_notice")
    assert row.delivered_at is None and row.attempts == 1
    assert row.kwargs == {"dispute_id": response.json()["id"]}

    monkeypatch.undo()  # the broker is back
    # The sweeper leaves rows younger than 30 s to their writer's own publish: move time.
    OutboxTask.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    with celery_worker_process(queue=unique_queue("outbox")) as worker:
        send(worker, "outbox_sweep")
        wait_for(
            lambda: OutboxTask.objects.get(pk=row.pk).delivered_at,
            what="the outbox row to be delivered",
        )
        # The worker published it to its own queue and ran it.
        wait_for(
            lambda: (
                "registry.disputes.send_filed_notice[" in worker.log()
                and " succeeded in " in worker.log().split("send_filed_notice[", 1)[1]
            ),
            what="the delivered task to run",
        )

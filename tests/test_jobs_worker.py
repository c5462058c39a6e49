"""The jobs on a REAL Celery worker process consuming from Redis (not eager mode): tasks are
sent through the broker, the worker writes to the test database, the test polls the database
for the outcome (bounded waits, not timed assertions). Time is never slept: the data is
dated back instead (the tasks take no "now": see registry/tasks/jobs.py)."""

import os
import subprocess
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
from tests.support.factories import lookup
from tests.support.jobs_data import make_cases, make_lookup_log
from tests.support.workers import (
    CELERY,
    ROOT,
    broker_url,
    celery_worker_process,
    unique_queue,
    wait_for,
    worker_database_url,
)

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

        # Ten days on (the cases dated back, not slept), the later cases go too, and only they.
        Case.objects.filter(pk__in=[m.case.pk for m in later]).update(expires_at=today())
        send(worker, "expiry")
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


def test_the_worker_purges_sightings_and_idempotency_keys_on_time(world):
    now = timezone.now()
    # Not yet due: looked up 89 days ago, the key stored 47 hours ago.
    young = make_lookup_log(world.bob.member, at=now - timedelta(days=89))
    key = IdempotencyKey.objects.create(
        member=world.alice.member, key="retry-1", request_hash="0" * 64
    )
    IdempotencyKey.objects.filter(pk=key.pk).update(created_at=now - timedelta(hours=47))

    with celery_worker_process(queue=unique_queue("retention")) as worker:
        send(worker, "lookup_log_retention")
        send(worker, "idempotency_retention")
        wait_for_runs("lookup_log_retention")
        wait_for_runs("idempotency_retention")
        assert Lookup.objects.count() == 1 and LookupLogEntry.objects.count() == 3
        assert Sighting.objects.count() == 3 and IdempotencyKey.objects.count() == 1

        # Due: the same rows two days older (dated back, not slept).
        Lookup.objects.filter(pk=young.pk).update(created_at=now - timedelta(days=91))
        LookupLogEntry.objects.update(created_at=now - timedelta(days=91))
        Sighting.objects.update(last_seen_at=now - timedelta(days=91))
        IdempotencyKey.objects.update(created_at=now - timedelta(hours=49))
        send(worker, "lookup_log_retention")
        send(worker, "idempotency_retention")
        wait_for_runs("lookup_log_retention", count=2)
        wait_for_runs("idempotency_retention", count=2)

    # The lookup log stays: it leaves by whole months past its own retention (partitions).
    assert Lookup.objects.count() == 1 and LookupLogEntry.objects.count() == 3
    assert not Sighting.objects.exists() and not IdempotencyKey.objects.exists()


def test_it_ignores_a_broker_message_that_moves_now_into_the_future(world):
    """Whoever can write to the broker sends the expiry job "as of 2040": nothing expires
    early. The task takes no time; only `run_job --now` (an operator's shell) moves it."""
    later = make_cases(world.alice.member, 3, expires_at=today() + timedelta(days=10))
    far_future = (timezone.now() + timedelta(days=5000)).isoformat()

    with celery_worker_process(queue=unique_queue("forged")) as worker:
        send(worker, "expiry", now_iso=far_future)
        send(worker, "expiry", now_iso=far_future, max_batches=0)
        send(worker, "expiry")  # a plain one after them: the solo worker runs them in order
        [run] = wait_for_runs("expiry")
    assert run.details["cases_expired"] == 0
    assert JobRun.objects.filter(job="expiry").count() == 1  # the forged ones never ran
    assert case_state(later) == ({CaseStatus.ACTIVE}, 6)
    assert not expiry_events()


def test_it_runs_workers_and_beat_without_the_oprf_seed(world, tmp_path):
    """The seed is for the web process only. A worker and a beat whose seed file cannot be
    read (as on a machine given no seed at all) start, and the worker runs its jobs; today's
    settings read the seed in every process and refused to start."""
    no_seed = {"REGISTRY_OPRF_SEED_FILE": str(tmp_path / "no-such-seed")}
    with celery_worker_process(queue=unique_queue("noseed"), env=no_seed) as worker:
        send(worker, "audit_seal")
        wait_for_runs("audit_seal")
        assert "REGISTRY_OPRF_SEED" not in worker.log()

    beat_log = tmp_path / "beat.log"
    env = {
        **os.environ,
        **no_seed,
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "CELERY_TASK_DEFAULT_QUEUE": unique_queue("noseed-beat"),
        "DATABASE_CONN_MAX_AGE": "0",
    }
    env.pop("REGISTRY_TEST_DB_NAME", None)
    with beat_log.open("wb") as log:
        beat = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "consortium",
                "beat",
                "--loglevel=info",
                "--pidfile=",
                f"--schedule={tmp_path / 'schedule'}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: beat.poll() is not None or "Starting..." in beat_log.read_text(),
                what="beat to start",
            )
            assert beat.poll() is None, beat_log.read_text()[-3000:]
        finally:
            beat.terminate()
            beat.wait(timeout=30)


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
    assert row.published_at is None and row.attempts == 1
    assert row.kwargs == {"dispute_id": response.json()["id"]}

    monkeypatch.undo()  # the broker is back
    # The sweeper leaves rows younger than 30 s to their writer's own publish: move time.
    OutboxTask.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    with celery_worker_process(queue=unique_queue("outbox")) as worker:
        send(worker, "outbox_sweep")
        wait_for(
            lambda: OutboxTask.objects.get(pk=row.pk).done_at,
            what="the outbox row's task to be done",
        )
        # The worker published it to its own queue and ran it.
        wait_for(
            lambda: (
                "registry.disputes.send_filed_notice[" in worker.log()
                and " succeeded in " in worker.log().split("send_filed_notice[", 1)[1]
            ),
            what="the delivered task to run",
        )

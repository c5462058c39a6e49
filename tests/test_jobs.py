"""The background jobs, run directly (no worker): expiry, retention, housekeeping, JobRun
bookkeeping, run_job and the default beat schedule. The real-worker proofs are in
test_jobs_worker.py; pepper rotation in test_pepper_rotation.py."""

import io
import json
import time
from datetime import timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import InterfaceError, OperationalError
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from registry.checks import check_registry_rules
from registry.models import (
    AuditEvent,
    AuditSeal,
    Case,
    CaseIdentifier,
    CaseStatus,
    Dispute,
    DisputeStatus,
    IdempotencyKey,
    JobRun,
    Lookup,
    LookupLogEntry,
    OutboxTask,
    Sighting,
)
from registry.services.audit import audit_record, audit_seal_lag_seconds
from registry.services.jobs import JOB_NAMES, batches, job_execute
from registry.services.jobs.expiry import expiry_run
from registry.services.jobs.housekeeping import audit_seal_run, outbox_sweep_run
from registry.services.jobs.retention import idempotency_retention_run, lookup_log_retention_run
from registry.services.jobs.runs import ABANDONED_AFTER
from tests.support.factories import lookup
from tests.support.jobs_data import make_cases, make_lookup_log
from tests.support.servers import test_database_url
from tests.support.world import race

pytestmark = pytest.mark.django_db


def today():
    return timezone.localdate()


def identifiers_of(made) -> int:
    return CaseIdentifier.objects.filter(case__in=[m.case for m in made]).count()


def statuses(made) -> set[str]:
    return set(
        Case.objects.filter(pk__in=[m.case.pk for m in made]).values_list("status", flat=True)
    )


def expiry_events():
    return list(AuditEvent.objects.filter(action="cases.expired").order_by("id"))


def expired_ids_in_events() -> list[str]:
    return [case_id for event in expiry_events() for case_id in event.details["case_ids"]]


# --- expiry ---------------------------------------------------------------------------------


def test_it_expires_exactly_the_due_cases_and_deletes_their_identifiers(world):
    member = world.alice.member
    past = make_cases(member, 5, expires_at=today() - timedelta(days=3))
    due_today = make_cases(member, 4, expires_at=today())
    tomorrow = make_cases(member, 3, expires_at=today() + timedelta(days=1))
    withdrawn = make_cases(
        member,
        2,
        expires_at=today() - timedelta(days=1),
        identifiers_per_case=0,
        status=CaseStatus.WITHDRAWN,
    )
    other_member = make_cases(world.bob.member, 2, expires_at=today() + timedelta(days=30))

    summary = expiry_run(batch_size=4)

    assert summary["cases_expired"] == 9 and summary["identifiers_purged"] == 18
    assert summary["batches"] == 3
    assert statuses(past + due_today) == {CaseStatus.EXPIRED}
    assert identifiers_of(past + due_today) == 0
    assert statuses(tomorrow + other_member) == {CaseStatus.ACTIVE}
    assert identifiers_of(tomorrow + other_member) == 10
    assert statuses(withdrawn) == {CaseStatus.WITHDRAWN}
    events = expiry_events()
    assert [e.details["cases"] for e in events] == [4, 4, 1]
    assert sorted(expired_ids_in_events()) == sorted(str(m.case.pk) for m in past + due_today)
    assert sum(e.details["identifiers_purged"] for e in events) == 18
    assert all(e.actor_type == "system" and e.object_type == "case" for e in events)


def test_it_does_nothing_the_second_time(world):
    make_cases(world.alice.member, 3, expires_at=today())
    assert expiry_run()["cases_expired"] == 3
    assert expiry_run() == {
        "expires_on_or_before": today().isoformat(),
        "batches": 0,
        "cases_expired": 0,
        "identifiers_purged": 0,
    }
    assert len(expiry_events()) == 1


def test_it_expires_as_of_the_time_it_is_given(world):
    in_a_month = make_cases(world.alice.member, 3, expires_at=today() + timedelta(days=30))
    assert expiry_run(now=timezone.now() + timedelta(days=29))["cases_expired"] == 0
    assert statuses(in_a_month) == {CaseStatus.ACTIVE}
    assert expiry_run(now=timezone.now() + timedelta(days=30))["cases_expired"] == 3
    assert statuses(in_a_month) == {CaseStatus.EXPIRED}
    assert identifiers_of(in_a_month) == 0


def test_it_expires_a_disputed_case_and_lists_its_undecided_dispute(world):
    [made] = make_cases(world.alice.member, 1, expires_at=today(), status=CaseStatus.DISPUTED)
    dispute = Dispute.objects.create(
        case=made.case,
        filed_by=world.bob.member,
        reason="not_me",
        filed_at=timezone.now(),
        due_at=timezone.now() + timedelta(days=20),
    )
    expiry_run()
    made.case.refresh_from_db()
    assert made.case.status == CaseStatus.EXPIRED
    [event] = expiry_events()
    assert event.details["undecided_dispute_ids"] == [str(dispute.pk)]
    dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.OPEN  # left for the officers to decide


def test_a_failed_batch_leaves_its_cases_untouched_and_the_next_run_finishes(world, monkeypatch):
    due = make_cases(world.alice.member, 10, expires_at=today() - timedelta(days=1))
    calls = []

    def crash_in_second_batch():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")

    monkeypatch.setattr("registry.services.jobs.expiry.pause_inside_batch", crash_in_second_batch)
    with pytest.raises(RuntimeError):
        expiry_run(batch_size=4)

    # The first batch is done, whole; the second rolled back, whole.
    expired = Case.objects.filter(pk__in=[m.case.pk for m in due], status=CaseStatus.EXPIRED)
    assert expired.count() == 4
    assert CaseIdentifier.objects.filter(case__in=expired).count() == 0
    for m in due:
        if m.case.pk not in {c.pk for c in expired}:
            assert CaseIdentifier.objects.filter(case=m.case).count() == 2
    assert len(expiry_events()) == 1

    monkeypatch.undo()
    assert expiry_run(batch_size=4)["cases_expired"] == 6
    ids = expired_ids_in_events()
    assert len(ids) == len(set(ids)) == 10
    assert statuses(due) == {CaseStatus.EXPIRED} and identifiers_of(due) == 0


def test_a_lookup_after_the_expiry_date_finds_nothing_before_the_job_runs(world):
    [expired_today] = make_cases(world.alice.member, 1, expires_at=today())
    [still_live] = make_cases(world.alice.member, 1, expires_at=today() + timedelta(days=1))
    both = expired_today.identifiers + still_live.identifiers
    idents = [{"kind": kind, "token": token} for kind, token in both]

    results = lookup(world.bob, idents)["results"]

    assert [r["matched"] for r in results] == [False, False, True, True]
    assert CaseIdentifier.objects.filter(case=expired_today.case).count() == 2  # job not run


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_expiry_runs_give_the_same_result_as_one(world):
    due = make_cases(world.alice.member, 120, expires_at=today() - timedelta(days=1))
    not_due = make_cases(world.alice.member, 10, expires_at=today() + timedelta(days=1))
    # Each batch holds its transaction (and its locked rows) open a moment, so the two runs
    # certainly overlap.
    with override_settings(REGISTRY_JOB_BATCH_PAUSE_SECONDS=0.05):
        summaries = race(lambda: expiry_run(batch_size=6), lambda: expiry_run(batch_size=6))
    errors = [s for s in summaries if isinstance(s, Exception)]

    assert not errors
    assert len(summaries) == 2 and all(s["cases_expired"] > 0 for s in summaries)
    assert sum(s["cases_expired"] for s in summaries) == 120
    ids = expired_ids_in_events()
    assert len(ids) == len(set(ids))  # no case expired (or audited) twice
    assert set(ids) == {str(m.case.pk) for m in due}
    assert statuses(due) == {CaseStatus.EXPIRED} and identifiers_of(due) == 0
    assert statuses(not_due) == {CaseStatus.ACTIVE} and identifiers_of(not_due) == 20


@pytest.mark.django_db(transaction=True)
@override_settings(REGISTRY_JOB_REST_FACTOR=2)
def test_it_rests_between_batches_with_the_batch_committed_and_nothing_locked(world, monkeypatch):
    due = make_cases(world.alice.member, 6, expires_at=today())
    due_ids = [m.case.pk for m in due]
    rests = []

    def rest(seconds):
        # Another session sees the batch committed and can lock every due case at once.
        with psycopg.connect(test_database_url(), autocommit=False) as other:
            rows = other.execute(
                "SELECT status FROM registry_case WHERE id = ANY(%s) FOR UPDATE NOWAIT",
                [due_ids],
            ).fetchall()
        rests.append((seconds, sorted(status for (status,) in rows)))

    monkeypatch.setattr(batches.time, "sleep", rest)
    summary = expiry_run(batch_size=4)

    assert summary["batches"] == 2 and summary["cases_expired"] == 6
    assert [statuses for _seconds, statuses in rests] == [
        ["active"] * 2 + ["expired"] * 4,
        ["expired"] * 6,
    ]
    assert all(0 < seconds <= batches.MAX_REST_SECONDS for seconds, _statuses in rests)


def test_it_rests_the_factor_times_the_batch_and_at_most_ten_seconds(monkeypatch):
    slept = []
    monkeypatch.setattr(batches.time, "sleep", slept.append)

    with override_settings(REGISTRY_JOB_REST_FACTOR=2):
        batches.rest_after_batch(time.monotonic() - 0.5)
        batches.rest_after_batch(time.monotonic() - 100)
    with override_settings(REGISTRY_JOB_REST_FACTOR=0):
        batches.rest_after_batch(time.monotonic() - 0.5)

    assert len(slept) == 2
    assert 1.0 <= slept[0] < 1.5
    assert slept[1] == batches.MAX_REST_SECONDS


@override_settings(REGISTRY_JOB_REST_FACTOR=0)
def test_it_does_not_rest_when_the_factor_is_zero(world, monkeypatch):
    make_cases(world.alice.member, 6, expires_at=today())
    monkeypatch.setattr(batches.time, "sleep", lambda seconds: pytest.fail("rested"))

    assert expiry_run(batch_size=2)["batches"] == 3


@pytest.mark.parametrize("factor", [-1.0, 10.5, float("nan")])
def test_it_refuses_a_rest_factor_out_of_range_at_start_up(factor):
    with override_settings(REGISTRY_JOB_REST_FACTOR=factor):
        errors = check_registry_rules(None)

    assert [error.id for error in errors] == ["registry.E018"]


# --- retention ------------------------------------------------------------------------------


def test_it_purges_sightings_past_the_velocity_window_and_keeps_the_lookup_log(world):
    """The velocity window governs the Sighting rollup only: lookups and their log are kept
    for the query-record period and leave by whole months (tests/test_partitions.py)."""
    now = timezone.now()
    old = make_lookup_log(world.bob.member, at=now - timedelta(days=91))
    recent = make_lookup_log(world.bob.member, at=now - timedelta(days=10))

    summary = lookup_log_retention_run(batch_size=2)

    assert summary["deleted"] == {"sighting": 3}
    assert Lookup.objects.filter(pk__in=[old.pk, recent.pk]).count() == 2
    assert LookupLogEntry.objects.count() == 6
    assert Sighting.objects.count() == 3
    events = AuditEvent.objects.filter(action="lookup_log.purged")
    assert sorted(e.details["deleted"] for e in events) == [1, 2]
    assert {e.details["table"] for e in events} == {"sighting"}

    # Time moves on: 81 days later the recent one is 91 days old too.
    lookup_log_retention_run(now=now + timedelta(days=81))
    assert not Sighting.objects.exists()
    assert Lookup.objects.count() == 2 and LookupLogEntry.objects.count() == 6


@override_settings(REGISTRY_VELOCITY_RETENTION_DAYS=30)
def test_the_velocity_window_is_configurable(world):
    make_lookup_log(world.bob.member, at=timezone.now() - timedelta(days=31))
    assert lookup_log_retention_run()["deleted"]["sighting"] == 3


def test_it_purges_idempotency_keys_after_their_lifetime(world):
    IdempotencyKey.objects.create(member=world.alice.member, key="k1", request_hash="0" * 64)
    IdempotencyKey.objects.create(member=world.alice.member, key="k2", request_hash="0" * 64)
    now = timezone.now()

    assert idempotency_retention_run(now=now + timedelta(hours=47))["deleted"] == {
        "idempotency_key": 0
    }
    assert IdempotencyKey.objects.count() == 2
    assert idempotency_retention_run(now=now + timedelta(hours=49))["deleted"] == {
        "idempotency_key": 2
    }
    assert not IdempotencyKey.objects.exists()
    [event] = AuditEvent.objects.filter(action="idempotency_keys.purged")
    assert event.details["deleted"] == 2


def test_housekeeping_deletes_finished_job_runs_past_their_retention():
    long_ago = timezone.now() - timedelta(days=31)
    JobRun.objects.create(job="expiry", status="succeeded", started_at=long_ago)
    kept = JobRun.objects.create(
        job="expiry", status="succeeded", started_at=timezone.now() - timedelta(days=29)
    )
    assert idempotency_retention_run()["job_runs_deleted"] == 1
    assert list(JobRun.objects.all()) == [kept]


# --- housekeeping ---------------------------------------------------------------------------


def test_the_outbox_sweep_publishes_what_is_left_and_deletes_old_done_rows(monkeypatch):
    published = []
    monkeypatch.setattr(
        "consortium.celery.app.send_task",
        lambda name, kwargs, headers, retry: published.append((name, kwargs, headers)),
    )
    now = timezone.now()
    unpublished = OutboxTask.objects.create(task="registry.jobs.audit_seal", kwargs={})
    OutboxTask.objects.filter(pk=unpublished.pk).update(created_at=now - timedelta(minutes=5))
    # Published, never done: again once REGISTRY_OUTBOX_REPUBLISH_SECONDS have passed.
    stranded = OutboxTask.objects.create(
        task="s", kwargs={"n": 1}, published_at=now - timedelta(hours=2)
    )
    running = OutboxTask.objects.create(task="r", published_at=now - timedelta(seconds=30))
    old = OutboxTask.objects.create(task="t", published_at=now, done_at=now - timedelta(days=2))
    fresh = OutboxTask.objects.create(task="t", published_at=now, done_at=now - timedelta(hours=2))

    summary = outbox_sweep_run()

    assert summary == {"published": 1, "republished": 1, "done_rows_deleted": 1}
    assert published == [
        ("registry.jobs.audit_seal", {}, {"registry_outbox_id": unpublished.pk}),
        ("s", {"n": 1}, {"registry_outbox_id": stranded.pk}),
    ]
    assert not OutboxTask.objects.filter(pk=old.pk).exists()
    assert OutboxTask.objects.filter(pk__in=[fresh.pk, running.pk]).count() == 2
    unpublished.refresh_from_db()
    stranded.refresh_from_db()
    assert unpublished.published_at is not None and unpublished.done_at is None
    assert stranded.published_at > now - timedelta(minutes=1) and stranded.done_at is None


def test_it_marks_an_outbox_row_done_only_when_its_task_returns(world):
    """The worker's task_success handler: a task published by the outbox (its row's id in the
    message header) marks that row done; a task from elsewhere (no header) touches nothing.
    (A task that raises sends no task_success; tests/test_outbox_worker.py kills one.)"""
    from registry.tasks.notifications import send_filed_notice as task
    from registry.tasks.outbox import outbox_task_done

    row = OutboxTask.objects.create(task="t", published_at=timezone.now())
    other = OutboxTask.objects.create(task="t", published_at=timezone.now())
    task.push_request(registry_outbox_id=row.pk)
    outbox_task_done(sender=task, result=0)
    task.pop_request()
    task.push_request()  # beat's or an operator's call: no header
    outbox_task_done(sender=task, result=0)
    task.pop_request()
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.done_at is not None and other.done_at is None


def test_the_seal_job_seals_everything_pending(monkeypatch):
    from registry.actors import Actor

    monkeypatch.setattr("registry.services.jobs.housekeeping.SEAL_CHUNK", 7)
    for n in range(20):
        audit_record(actor=Actor.system(), action="test.event", details={"n": n})
    summary = audit_seal_run()
    assert summary["sealed"] == 20 and summary["batches"] == 3
    # The first run also signs the first checkpoint and seals that checkpoint's own event.
    assert summary["checkpoint"]["seq"] == 20
    assert AuditSeal.objects.count() == 21
    assert audit_seal_lag_seconds() == 0.0


# --- JobRun, run_job, schedule --------------------------------------------------------------


def test_it_records_each_run_with_its_summary(world):
    make_cases(world.alice.member, 2, expires_at=today())
    job_execute("expiry")
    run = JobRun.objects.get(job="expiry")
    assert run.status == "succeeded" and run.finished_at >= run.started_at
    assert run.details["cases_expired"] == 2


def test_it_records_a_failed_run_and_marks_abandoned_ones(monkeypatch):
    lost = JobRun.objects.create(
        job="expiry", status="running", started_at=timezone.now() - ABANDONED_AFTER - timedelta(1)
    )

    def boom(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("registry.services.jobs.expiry.expiry_run", boom)
    with pytest.raises(RuntimeError):
        job_execute("expiry")

    failed = JobRun.objects.filter(job="expiry").exclude(pk=lost.pk).get()
    assert failed.status == "failed"
    assert failed.details == {"error": "RuntimeError", "message": "database on fire"}
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.details == {"error": "abandoned"}


def test_run_job_runs_each_job_by_name_and_shows_the_last_runs(world):
    make_cases(world.alice.member, 2, expires_at=today() + timedelta(days=10))
    out = io.StringIO()
    in_ten_days = (timezone.now() + timedelta(days=10)).isoformat()
    call_command("run_job", "expiry", "--now", in_ten_days, "--batch-size", "1", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["job"] == "expiry" and summary["cases_expired"] == 2
    assert summary["batches"] == 2

    for name in JOB_NAMES:
        call_command("run_job", name, stdout=io.StringIO())
    status = io.StringIO()
    call_command("run_job", "--status", stdout=status)
    lines = status.getvalue().splitlines()
    assert len(lines) == len(JOB_NAMES)
    assert all(": succeeded started " in line for line in lines)


def test_run_job_refuses_an_unknown_job_or_a_naive_time():
    with pytest.raises(CommandError):
        call_command("run_job", "everything")
    with pytest.raises(CommandError):
        call_command("run_job", "expiry", "--now", "2030-01-01T00:00:00")
    with pytest.raises(CommandError):
        call_command("run_job")


def test_the_default_schedule_runs_every_job_with_a_registered_task():
    import registry.tasks  # noqa: F401 - registers the tasks
    from consortium.celery import app

    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__startswith="registry: ")}
    assert {t.task for t in tasks.values()} == {
        "registry.jobs.audit_seal",
        "registry.jobs.outbox_sweep",
        "registry.jobs.expiry",
        "registry.jobs.lookup_log_retention",
        "registry.jobs.idempotency_retention",
        "registry.jobs.pepper_rotation",
        "registry.jobs.usage_signals",
        "registry.jobs.closed_text_scrub",
        "registry.disputes.sweep_deadlines",
        "registry.jobs.velocity_alerts",
        "registry.jobs.watch_housekeeping",
        "registry.jobs.webhook_deliveries",
        "registry.jobs.partition_maintenance",
        "registry.jobs.ring_rebuild",
    }
    assert all(t.task in app.tasks and t.enabled for t in tasks.values())
    seal = tasks["registry: audit seal"].interval
    assert (seal.every, seal.period) == (10, "seconds")
    deadlines = tasks["registry: dispute deadlines"].interval
    assert (deadlines.every, deadlines.period) == (15, "minutes")
    for name in JOB_NAMES:
        if name != "dispute_deadlines":
            task = app.tasks[f"registry.jobs.{name}"]
            assert task.retry_backoff
            assert set(task.autoretry_for) == {OperationalError, InterfaceError}

"""Rings on a REAL Celery worker process (Redis broker, the test database): the ring updates
the outbox holds after submissions and a withdrawal, published by the worker's own outbox
sweep and run there, and the daily rebuild job sent as beat sends it. The test polls the
database for the outcome (bounded waits, no timing assertions)."""

from datetime import timedelta

import pytest
from celery import Celery
from django.utils import timezone

from consortium.celery import app
from registry.models import JobRun, OutboxTask, Ring, RingCase
from registry.services.case_lifecycle import TASK_CASE_RINGS
from tests.support.rings import device, phone, report, rings, withdraw
from tests.support.workers import celery_worker_process, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def dead_broker_app() -> Celery:
    """The project's Celery configuration with the broker on a port nothing listens on: the
    writers' own publish fails and the tasks wait in the outbox for a worker's sweep, which
    publishes them to that worker's queue."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Celery("consortium", broker=f"redis://127.0.0.1:{port}/0")
    dead.config_from_object("django.conf:settings", namespace="CELERY")
    return dead


def ring_tasks_done() -> bool:
    rows = OutboxTask.objects.filter(task=TASK_CASE_RINGS)
    return rows.exists() and not rows.filter(done_at=None).exists()


def sweep(worker) -> None:
    # The sweeper leaves rows younger than 30 s to their writer's publish: date them back.
    OutboxTask.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    app.send_task("registry.jobs.outbox_sweep", queue=worker.queue)


def test_the_worker_keeps_rings_current_after_submissions_and_a_withdrawal(world, monkeypatch):
    monkeypatch.setattr("consortium.celery.app", dead_broker_app())
    shared, other = phone(), device(21)
    a = report(world.alice, shared)
    b = report(world.bob, shared, other)
    c = report(world.carol, other)
    monkeypatch.undo()

    with celery_worker_process(queue=unique_queue("rings")) as worker:
        sweep(worker)
        wait_for(ring_tasks_done, what="the ring updates of three submissions")
        assert rings() == {frozenset({a, b, c})}
        ring = Ring.objects.get()
        assert (ring.size, ring.member_count) == (3, 3)

        monkeypatch.setattr("consortium.celery.app", dead_broker_app())
        withdraw(world.bob, b)  # the bridge: nothing is left linked
        monkeypatch.undo()
        sweep(worker)
        wait_for(ring_tasks_done, what="the ring update of the withdrawal")
        assert rings() == set() and not Ring.objects.exists()

        # A lost update, then the daily rebuild as beat sends it: the ring comes back.
        d = report(world.bob, shared)  # published to the default queue, which no one reads
        assert rings() == set()
        app.send_task("registry.jobs.ring_rebuild", queue=worker.queue)
        (run,) = wait_for(
            lambda: list(JobRun.objects.filter(job="ring_rebuild", status="succeeded")),
            what="the rebuild's run",
        )
    assert run.details["rings_created"] == 1
    assert rings() == {frozenset({a, d})}
    assert RingCase.objects.count() == 2

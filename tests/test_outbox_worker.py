"""No side effect lost with a worker: a worker killed (SIGKILL) in the middle of a task that
the outbox published leaves the task to another worker, and every side effect happens exactly
once. Real processes: Celery workers consuming from Redis, sending mail over SMTP to a real
receiver in the test process (tests/mailbox.py), which counts what arrives.

The worker is killed while its second dispute notice waits for the SMTP greeting: the task
has locked its dispute, sent nothing, committed nothing, and its message is taken but not
acknowledged (acks_late). Before this change the outbox row was already "delivered", so the
sweep never published it again, and Redis gave the message back only an hour later: the
notice never went.
"""

from datetime import timedelta

import pytest
from celery import Celery
from django.utils import timezone

from consortium.celery import app
from registry.models import AuditEvent, OutboxTask
from tests.support.jobs_data import make_cases
from tests.support.mailbox import smtp_receiver
from tests.support.workers import celery_worker_process, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

NOTICE = "registry.disputes.send_filed_notice"
DESK = "desk@registry.example"


def dead_broker_app() -> Celery:
    """The project's Celery configuration, with the broker on a port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Celery("consortium", broker=f"redis://127.0.0.1:{port}/0")
    dead.config_from_object("django.conf:settings", namespace="CELERY")
    return dead


def file_disputes(world, monkeypatch, count: int) -> list[str]:
    """`count` disputes filed through the API while the broker is down, so that their notices
    wait in the outbox until a worker's sweep publishes them to that worker's own queue."""
    made = make_cases(world.alice.member, count, expires_at=timezone.localdate() + timedelta(99))
    monkeypatch.setattr("consortium.celery.app", dead_broker_app())
    ids = []
    for m in made:
        kind, token = m.identifiers[0]
        response = world.bob.post(
            "/api/v1/disputes",
            {
                "case_id": str(m.case.pk),
                "identifier": {"kind": kind, "token": token},
                "reason": "not_me",
                "statement": "Not my phone.",
            },
        )
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    monkeypatch.undo()
    # The sweeper leaves rows younger than 30 s to their writer's publish: date them back.
    OutboxTask.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    return ids


def mail_env(mailbox, **extra: str) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mailbox.port),
        "EMAIL_USE_TLS": "false",
        "REGISTRY_OFFICER_EMAILS": DESK,
        **extra,
    }


def sweep(worker) -> None:
    app.send_task("registry.jobs.outbox_sweep", queue=worker.queue)


def kill_mid_second_notice(world, monkeypatch, mailbox) -> tuple[list[str], str]:
    """Three notices; the first worker sends one, then is killed inside the second."""
    ids = file_disputes(world, monkeypatch, 3)
    with celery_worker_process(queue=unique_queue("outbox"), env=mail_env(mailbox)) as worker:
        sweep(worker)
        wait_for(lambda: mailbox.connections >= 2, what="the second notice to start sending")
        worker.kill()
        queue = worker.queue
    mailbox.release()
    assert OutboxTask.objects.filter(done_at__isnull=False).count() == 1
    return ids, queue


def recipients_per_dispute(mailbox, ids) -> dict[str, list[str]]:
    return {
        dispute_id: sorted(to for subject, to in mailbox.received() if dispute_id in subject)
        for dispute_id in ids
    }


def assert_each_notice_sent_exactly_once(world, mailbox, ids) -> None:
    everyone = sorted([world.alice.member.contact_email, DESK, world.officer.user.email])
    assert recipients_per_dispute(mailbox, ids) == dict.fromkeys(ids, everyone)
    assert len(mailbox.received()) == 3 * len(ids)
    sent = AuditEvent.objects.filter(action="dispute.filed_notice_sent")
    assert sorted(sent.values_list("object_id", flat=True)) == sorted(ids)
    assert not OutboxTask.objects.filter(done_at__isnull=True).exists()


def all_done() -> bool:
    return OutboxTask.objects.count() > 0 and not OutboxTask.objects.filter(done_at=None).exists()


def test_it_hands_a_killed_workers_task_to_another_worker(world, monkeypatch):
    """The broker's path: the next worker takes the dead one's unacknowledged task back after
    the visibility timeout (3 s here) and sends the notice; nothing is sent twice."""
    with smtp_receiver(hold_from=2) as mailbox:
        ids, queue = kill_mid_second_notice(world, monkeypatch, mailbox)
        quick = {"REGISTRY_TASK_TIME_LIMIT_SECONDS": "1", "CELERY_VISIBILITY_TIMEOUT": "3"}
        with celery_worker_process(queue=queue, env=mail_env(mailbox, **quick)):
            wait_for(all_done, timeout=90, what="every outbox row to be done")
        assert_each_notice_sent_exactly_once(world, mailbox, ids)
        assert all(row.task == NOTICE for row in OutboxTask.objects.all())


def test_it_publishes_again_a_task_published_and_never_done(world, monkeypatch):
    """The outbox's path, for a message the broker lost or still holds for a dead worker: the
    sweep publishes again a row published and not done after REGISTRY_OUTBOX_REPUBLISH_SECONDS
    (dated back here, not slept); the notice goes once."""
    with smtp_receiver(hold_from=2) as mailbox:
        ids, queue = kill_mid_second_notice(world, monkeypatch, mailbox)
        with celery_worker_process(queue=queue, env=mail_env(mailbox)) as worker:
            # The third notice was never taken: the new worker sends it from the queue.
            wait_for(
                lambda: OutboxTask.objects.filter(done_at__isnull=False).count() == 2,
                what="the third notice",
            )
            stranded = OutboxTask.objects.get(done_at=None)
            OutboxTask.objects.filter(pk=stranded.pk).update(
                published_at=timezone.now() - timedelta(hours=2)
            )
            sweep(worker)
            wait_for(all_done, what="every outbox row to be done")
        stranded.refresh_from_db()
        assert stranded.attempts == 3  # the writer's failed try, then the two sweeps' publishes
        assert_each_notice_sent_exactly_once(world, mailbox, ids)

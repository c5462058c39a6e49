"""Side effects (Celery tasks) recorded in the writer's transaction and published on commit.

A row goes through three states:

- not published (`published_at` null): the writer's own publish, one attempt with a short
  timeout after commit, failed (the broker was down). `outbox_sweep` (a beat job) publishes
  it once it is OUTBOX_FIRST_PUBLISH_AFTER old;
- published, not done: the message is in the broker or a worker is running it;
- done (`done_at`): the task returned. The worker marks it (registry/tasks/outbox.py), after
  the task's service has committed its effect; the message carries the row's id in a header
  (OUTBOX_HEADER), never in the task's own arguments.

A worker that dies mid-task (SIGKILL, OOM, machine lost) leaves its message unacknowledged
(acks_late): Redis hands it to another worker after CELERY_VISIBILITY_TIMEOUT. Should the
message be lost altogether (Redis restarted without its data), `outbox_sweep` publishes the
row again once it has been published and not done for REGISTRY_OUTBOX_REPUBLISH_SECONDS,
which is longer than any task may run, so a task still running is not doubled.

A task can therefore run more than once: every task behind the outbox must be idempotent (the
dispute e-mails check and set their mark in the transaction that sends them).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from registry.models import OutboxTask

logger = logging.getLogger(__name__)

OUTBOX_HEADER = "registry_outbox_id"
# Younger rows are left to their writer's own publish on commit.
OUTBOX_FIRST_PUBLISH_AFTER = timedelta(seconds=30)


def outbox_enqueue(task: str, **kwargs) -> OutboxTask:
    """Call inside the writer's transaction. `task` is the Celery task name, kwargs JSON ids."""
    row = OutboxTask.objects.create(task=task, kwargs=kwargs)
    transaction.on_commit(lambda: _publish(row.pk))
    return row


def _publish(row_id: int) -> bool:
    from consortium.celery import app

    row = OutboxTask.objects.filter(pk=row_id, done_at__isnull=True).first()
    if row is None:
        return True
    try:
        app.send_task(row.task, kwargs=row.kwargs, headers={OUTBOX_HEADER: row.pk}, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure: leave it for the sweeper
        OutboxTask.objects.filter(pk=row_id).update(attempts=F("attempts") + 1)
        logger.warning(
            "broker unavailable; task left in outbox", extra={"task": row.task, "outbox_id": row_id}
        )
        return False
    OutboxTask.objects.filter(pk=row_id).update(
        published_at=timezone.now(), attempts=F("attempts") + 1
    )
    return True


def outbox_done(*, outbox_id) -> bool:
    """Mark a row done (its task returned). Idempotent; False when it was already done or
    there is no such row (deleted, or a forged header)."""
    try:
        row_id = int(outbox_id)
    except (TypeError, ValueError):
        return False
    return bool(
        OutboxTask.objects.filter(pk=row_id, done_at__isnull=True).update(done_at=timezone.now())
    )


def outbox_republish_after() -> timedelta:
    return timedelta(seconds=settings.REGISTRY_OUTBOX_REPUBLISH_SECONDS)


def outbox_sweep(*, limit: int = 500) -> dict:
    """Publish the rows never published, and again those published but not done for longer
    than any task may run. Returns how many of each were published."""
    now = timezone.now()
    due = OutboxTask.objects.filter(done_at__isnull=True).filter(
        Q(published_at__isnull=True, created_at__lte=now - OUTBOX_FIRST_PUBLISH_AFTER)
        | Q(published_at__lte=now - outbox_republish_after())
    )
    rows = list(due.order_by("created_at").values_list("pk", "published_at", "task")[:limit])
    counts = {"published": 0, "republished": 0}
    for row_id, published_at, task in rows:
        if published_at is not None:
            # Its worker died or the broker lost it: worth an operator's eye if it repeats.
            logger.warning(
                "outbox task not done; publishing it again",
                extra={"task": task, "outbox_id": row_id},
            )
        if _publish(row_id):
            counts["republished" if published_at else "published"] += 1
    return counts

"""Side effects (Celery tasks) recorded in the writer's transaction and published on commit.

The web process never waits on the broker: publishing is one attempt with a short timeout
after commit; if the broker is down the row stays undelivered and `outbox_sweep` (a beat job)
publishes it later. Tasks must therefore be idempotent: a row can be published twice if a
process dies between publishing and marking it delivered.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from registry.models import OutboxTask

logger = logging.getLogger(__name__)


def outbox_enqueue(task: str, **kwargs) -> OutboxTask:
    """Call inside the writer's transaction. `task` is the Celery task name, kwargs JSON ids."""
    row = OutboxTask.objects.create(task=task, kwargs=kwargs)
    transaction.on_commit(lambda: _publish(row.pk))
    return row


def _publish(row_id: int) -> bool:
    from consortium.celery import app

    row = OutboxTask.objects.filter(pk=row_id, delivered_at__isnull=True).first()
    if row is None:
        return True
    try:
        app.send_task(row.task, kwargs=row.kwargs, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure: leave it for the sweeper
        OutboxTask.objects.filter(pk=row_id).update(attempts=row.attempts + 1)
        logger.warning(
            "broker unavailable; task left in outbox", extra={"task": row.task, "outbox_id": row_id}
        )
        return False
    OutboxTask.objects.filter(pk=row_id).update(
        delivered_at=timezone.now(), attempts=row.attempts + 1
    )
    return True


def outbox_sweep(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Publish undelivered tasks; returns how many were delivered."""
    cutoff = timezone.now() - older_than
    ids = list(
        OutboxTask.objects.filter(delivered_at__isnull=True, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for row_id in ids if _publish(row_id))

"""The outbox's end of every task: when a task published by the outbox returns, its row is
marked done. Generic, so that a new task needs no code of its own for it: the outbox puts
the row's id in a message header (not in the task's arguments, which stay its own), and
this handler of Celery's task_success signal reads it back.

The mark comes after the task's service has committed (each service is its own atomic
write), in a statement of its own. If the worker dies in between, the task runs again (the
broker's redelivery, or the outbox sweep) and its idempotent service finds the work done and
does nothing; the row is marked then. Marking inside the service's transaction instead would
need every service to know the outbox; and for a task that commits batch by batch it would
mean holding one transaction across the batches, so a crash would undo marks of mail already
sent. A task that raises is not done: the sweep publishes it again later.
"""

import logging

from celery.signals import task_success

from registry.services.outbox import OUTBOX_HEADER, outbox_done

logger = logging.getLogger(__name__)


@task_success.connect
def outbox_task_done(sender=None, **_kwargs) -> None:
    outbox_id = getattr(sender.request, OUTBOX_HEADER, None) if sender is not None else None
    if outbox_id is None:
        return  # not published by the outbox (beat, a test, an operator)
    if not outbox_done(outbox_id=outbox_id):
        logger.info("outbox row already done or gone", extra={"outbox_id": outbox_id})

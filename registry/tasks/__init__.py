"""Celery tasks, thin: ids in, one idempotent service call. One module per area; Celery's
autodiscovery imports this package, which imports them all (and the outbox's handler that
marks a row done when its task returns: registry/tasks/outbox.py)."""

from registry.tasks import alerts, jobs, notifications, outbox, rings  # noqa: F401

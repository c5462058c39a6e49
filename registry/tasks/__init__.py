"""Celery tasks, thin: ids in, one idempotent service call. One module per area; Celery's
autodiscovery imports this package, which imports them all."""

from registry.tasks import alerts, jobs, notifications  # noqa: F401

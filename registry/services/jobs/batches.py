"""What every batched job shares: batch-size defaults, the test-only pause, and deleting the
rows that match a condition one short transaction at a time."""

import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

MAX_REST_SECONDS = 10.0  # a batch stuck on a lock must not put the job to sleep for minutes


def job_now(now: datetime | None) -> datetime:
    """The time the job acts as of: `now` when a caller (a test, an operator) moves time."""
    return now or timezone.now()


def job_batch_size(batch_size: int | None) -> int:
    size = batch_size or settings.REGISTRY_JOB_BATCH_SIZE
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    return size


def more_batches_allowed(done: int, max_batches: int | None) -> bool:
    return max_batches is None or done < max_batches


def rest_after_batch(started: float) -> None:
    """Between two batches (no transaction open, no row locked), rest REGISTRY_JOB_REST_FACTOR
    times the batch's duration since `started` (time.monotonic()). A batch shares the cores,
    the disk and the WAL with the API's lookups: resting spreads the same work over longer, so
    their tail latency rises less (bench/README.md, "Large run")."""
    factor = settings.REGISTRY_JOB_REST_FACTOR
    if factor > 0:
        time.sleep(min(MAX_REST_SECONDS, factor * (time.monotonic() - started)))


def pause_inside_batch() -> None:
    """Test-only (always 0 in production): hold each batch's transaction open a moment so that
    a test can kill the worker while a batch is uncommitted."""
    if settings.REGISTRY_JOB_BATCH_PAUSE_SECONDS > 0:
        time.sleep(settings.REGISTRY_JOB_BATCH_PAUSE_SECONDS)


def delete_in_batches(
    queryset: models.QuerySet,
    *,
    batch_size: int,
    max_batches: int | None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Delete the rows of `queryset`, `batch_size` at a time, each batch in its own
    transaction. Rows another worker is deleting are skipped (SKIP LOCKED): that worker
    finishes them. `on_batch(count)` runs inside each batch's transaction (for its audit
    event). Returns (rows deleted, batches)."""
    deleted = batches = 0
    while more_batches_allowed(batches, max_batches):
        started = time.monotonic()
        with transaction.atomic():
            ids = list(
                queryset.order_by()
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            queryset.model.objects.filter(pk__in=ids).delete()
            if on_batch is not None:
                on_batch(len(ids))
            pause_inside_batch()
        deleted += len(ids)
        batches += 1
        rest_after_batch(started)
    return deleted, batches

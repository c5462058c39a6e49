"""The daily ring rebuild (services/rings.py): every ring recomputed from the shared digests
in one transaction, repairing whatever the incremental updates missed and refreshing the
growth figures (new cases in the last 7 and 30 days) of rings no case has touched since."""

from datetime import datetime

from registry.services.jobs.batches import job_now
from registry.services.rings import rings_rebuild


def ring_rebuild_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    return rings_rebuild(now=job_now(now))

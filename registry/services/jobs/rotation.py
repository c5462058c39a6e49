"""Pepper rotation: re-key every stored digest to the current pepper version, in place.

registry/tokens.py layers peppers: digest_vn = HMAC(pepper_n, digest_v(n-1)), so a row at
version k < n becomes current by applying peppers k+1..n to its digest; no token is needed.
Lookups match every version that may still have rows meanwhile, so nothing stops matching
while the job runs, and nothing needs to stop.

The job walks CaseIdentifier, LookupLogEntry and Sighting in id order. One batch is one
transaction: lock up to `batch_size` rows still below the current version (FOR UPDATE SKIP
LOCKED: a second worker takes the next rows instead of waiting or doubling up), rewrite their
digests with one UPDATE, advance the table's cursor in RegistryState("pepper_rotation") and
record one audit event (table, row count, id range). A crash loses at most the batch in
flight; the next run resumes at the cursor, and before declaring a table done it looks for
rows behind the cursor too (a batch of another worker that died, a row written late by a
process still on the old configuration). When nothing is left anywhere, the state records
`completed_version` and later runs return at once.

Sighting has one row per (digest, kind, member). A lookup during the rotation may already
have written the current-version row for an identifier whose old-version row is still
waiting: re-keying the old row would then collide. The two rows are one member's sightings
of one identifier, so they are merged: the current row keeps the later `last_seen_at` and the
old row is deleted (counted as `merged`). If a lookup inserts such a row between our check
and our UPDATE, the batch's IntegrityError rolls it back and the batch is retried.

Watch rows (uuid keys, one per (member, kind, digest)) are re-keyed by their own batches
after the other tables: a member that watched the identifier again during the rotation has a
current-version twin, and the two are merged into the twin (the later expiry wins).

Operators: configure the new pepper as REGISTRY_PEPPER with the old ones in
REGISTRY_PREVIOUS_PEPPERS (oldest first), restart, and run (or let beat run) `pepper_rotation`.
Finish one rotation before starting another: the job refuses to start a rotation to a new
version while the state records an unfinished one (RotationUnfinished). Lookups probe every
version stored rows may still have (registry/selectors/lookups.py, PROBE_CTE), and a system
check (registry.E014) fails when a stored version is beyond the configured peppers.
"""

import logging
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import CaseIdentifier, LookupLogEntry, RegistryState, Sighting, Watch
from registry.selectors.lookups import ROTATION_STATE_KEY
from registry.services.audit import audit_record
from registry.services.jobs.batches import job_batch_size, more_batches_allowed, pause_inside_batch
from registry.tokens import current_pepper_version, rotate_digest

logger = logging.getLogger(__name__)

STATE_KEY = ROTATION_STATE_KEY
ROTATED_TABLES = (
    ("case_identifier", CaseIdentifier),
    ("lookup_log_entry", LookupLogEntry),
    ("sighting", Sighting),
)
BATCH_ATTEMPTS = 3


def pepper_rotation_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    target = current_pepper_version()
    size = job_batch_size(batch_size)
    summary = {
        "target_version": target,
        "batches": 0,
        "rotated": {},
        "merged": 0,
        "complete": False,
    }
    state = pepper_rotation_state()
    if state.get("completed_version") == target:
        summary["complete"] = True
        return summary
    _refuse_if_another_rotation_is_unfinished(state, target)
    for table, model in ROTATED_TABLES:
        summary["rotated"][table] = 0
        while more_batches_allowed(summary["batches"], max_batches):
            batch = _rotate_batch_with_retry(table, model, target=target, batch_size=size)
            if batch is None:
                break
            summary["batches"] += 1
            summary["rotated"][table] += batch["rows"]
            summary["merged"] += batch["merged"]
    summary["rotated"]["watch"] = 0
    while more_batches_allowed(summary["batches"], max_batches):
        batch = _rotate_watch_batch(target=target, batch_size=size)
        if batch is None:
            break
        summary["batches"] += 1
        summary["rotated"]["watch"] += batch["rows"]
        summary["merged"] += batch["merged"]
    summary["complete"] = _complete_if_nothing_left(target)
    return summary


class RotationUnfinished(RuntimeError):
    """A rotation to another version started and has not completed."""


def _refuse_if_another_rotation_is_unfinished(state: dict, target: int) -> None:
    """One rotation at a time: a new pepper configured while the last rotation is still
    re-keying would leave rows on three layers, and a pepper removed before its rotation
    completed would strand rows on a layer nothing can compute any more."""
    started = state.get("target_version")
    if started is None or started == target or state.get("completed_version") == started:
        return
    raise RotationUnfinished(
        f"The rotation to pepper version {started} has not completed, and the configuration "
        f"now names version {target}. Configure the peppers of version {started} again, let "
        "pepper_rotation finish, then add the next pepper."
    )


def pepper_rotation_state() -> dict:
    row = RegistryState.objects.filter(key=STATE_KEY).first()
    return row.value if row else {}


def stored_pepper_versions(*, using: str = "default") -> set[int]:
    """The pepper versions stored rows are at. It reads whole tables (only case_identifier
    has a pepper_version index): for the system check at deploy time, never for requests."""
    versions: set[int] = set()
    for _table, model in ROTATED_TABLES:
        versions |= set(
            model.objects.using(using)
            .order_by()
            .values_list("pepper_version", flat=True)
            .distinct()
        )
    return versions


def stale_rows_left(target: int) -> dict[str, bool]:
    return {
        table: model.objects.filter(pepper_version__lt=target).exists()
        for table, model in (*ROTATED_TABLES, ("watch", Watch))
    }


@transaction.atomic
def _rotate_watch_batch(*, target: int, batch_size: int) -> dict | None:
    rows = list(
        Watch.objects.filter(pepper_version__lt=target)
        .order_by("pk")
        .select_for_update(skip_locked=True)
        .values("pk", "digest", "pepper_version", "member_id", "kind", "expires_on")[:batch_size]
    )
    if not rows:
        return None
    new = {row["pk"]: _rotated(bytes(row["digest"]), row["pepper_version"], target) for row in rows}
    twins = {
        (w.member_id, w.kind, bytes(w.digest)): w
        for w in Watch.objects.select_for_update().filter(
            digest__in=list(new.values()), pepper_version=target
        )
    }
    merged = set()
    for row in rows:
        twin = twins.get((row["member_id"], row["kind"], new[row["pk"]]))
        if twin is not None:
            if row["expires_on"] > twin.expires_on:
                twin.expires_on = row["expires_on"]
                twin.save(update_fields=["expires_on"])
            merged.add(row["pk"])
    Watch.objects.filter(pk__in=merged).delete()
    rest = {pk: digest for pk, digest in new.items() if pk not in merged}
    if rest:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Watch._meta.db_table} AS t SET digest = v.digest,"  # noqa: S608
                " pepper_version = %s FROM unnest(%s::uuid[], %s::bytea[]) AS v(id, digest)"
                " WHERE t.id = v.id",
                [target, list(rest), list(rest.values())],
            )
    details = {"table": "watch", "rows": len(rows), "merged": len(merged), "to_version": target}
    audit_record(
        actor=Actor.system(),
        action=AuditAction.PEPPER_ROTATED,
        object_type="pepper_version",
        object_id=str(target),
        details=details,
    )
    return details


def _rotate_batch_with_retry(table: str, model, *, target: int, batch_size: int) -> dict | None:
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return _rotate_batch(table, model, target=target, batch_size=batch_size)
        except IntegrityError:
            # A lookup inserted a colliding current-version Sighting after our check: the
            # batch rolled back whole; the retry sees that row and merges with it.
            if attempt == BATCH_ATTEMPTS:
                raise
            logger.warning(
                "pepper rotation batch collided; retrying",
                extra={"table": table, "attempt": attempt},
            )
    return None


@transaction.atomic
def _rotate_batch(table: str, model, *, target: int, batch_size: int) -> dict | None:
    cursor = _table_progress(pepper_rotation_state(), table, target)["cursor"]
    rows = _lock_stale_rows(model, target=target, after_id=cursor, batch_size=batch_size)
    if not rows and cursor > 0:
        rows = _lock_stale_rows(model, target=target, after_id=0, batch_size=batch_size)
    if not rows:
        return None
    new_digests = {
        row["pk"]: _rotated(row["digest"], row["pepper_version"], target) for row in rows
    }
    merged = _merge_sightings(rows, new_digests, target) if model is Sighting else set()
    _write_digests(model, {pk: d for pk, d in new_digests.items() if pk not in merged}, target)
    ids = [row["pk"] for row in rows]
    _save_progress(table, target, last_id=max(ids), rows=len(rows))
    details = {
        "table": table,
        "rows": len(rows),
        "merged": len(merged),
        "to_version": target,
        "first_id": min(ids),
        "last_id": max(ids),
    }
    audit_record(
        actor=Actor.system(),
        action=AuditAction.PEPPER_ROTATED,
        object_type="pepper_version",
        object_id=str(target),
        details=details,
    )
    pause_inside_batch()
    return details


def _lock_stale_rows(model, *, target: int, after_id: int, batch_size: int) -> list[dict]:
    fields = ["pk", "digest", "pepper_version"]
    if model is Sighting:
        fields += ["kind", "member_id", "last_seen_at"]
    rows = (
        model.objects.filter(pepper_version__lt=target, pk__gt=after_id)
        .order_by("pk")
        .select_for_update(skip_locked=True)
        .values(*fields)[:batch_size]
    )
    return [{**row, "digest": bytes(row["digest"])} for row in rows]


def _rotated(digest: bytes, version: int, target: int) -> bytes:
    for layer in range(version + 1, target + 1):
        digest = rotate_digest(digest, layer)
    return digest


def _write_digests(model, new_digests: dict[int, bytes], target: int) -> None:
    if not new_digests:
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET digest = v.digest, pepper_version = %s"  # noqa: S608
            " FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, digest) WHERE t.id = v.id",
            [target, list(new_digests), list(new_digests.values())],
        )


def _merge_sightings(rows: list[dict], new_digests: dict[int, bytes], target: int) -> set[int]:
    """Old-version rows whose re-keyed form already exists: fold them into that row."""
    current = {
        (bytes(s.digest), s.kind, s.member_id): s
        for s in Sighting.objects.select_for_update().filter(
            digest__in=list(new_digests.values()), pepper_version=target
        )
    }
    merged = set()
    for row in rows:
        twin = current.get((new_digests[row["pk"]], row["kind"], row["member_id"]))
        if twin is None:
            continue
        if row["last_seen_at"] > twin.last_seen_at:
            twin.last_seen_at = row["last_seen_at"]
            twin.save(update_fields=["last_seen_at"])
        merged.add(row["pk"])
    if merged:
        Sighting.objects.filter(pk__in=merged).delete()
    return merged


def _table_progress(state: dict, table: str, target: int) -> dict:
    if state.get("target_version") != target:
        return {"cursor": 0, "rotated": 0}
    return state.get("tables", {}).get(table, {"cursor": 0, "rotated": 0})


def _locked_state(target: int) -> RegistryState:
    state, _created = RegistryState.objects.select_for_update().get_or_create(
        key=STATE_KEY, defaults={"value": {}}
    )
    if state.value.get("target_version") != target:
        state.value = {
            "target_version": target,
            "started_at": timezone.now().isoformat(),
            "tables": {},
        }
    return state


def _save_progress(table: str, target: int, *, last_id: int, rows: int) -> None:
    state = _locked_state(target)
    progress = _table_progress(state.value, table, target)
    # max(): two workers finish batches out of order; the cursor never goes back.
    state.value["tables"][table] = {
        "cursor": max(progress["cursor"], last_id),
        "rotated": progress["rotated"] + rows,
    }
    state.save(update_fields=["value", "updated_at"])


@transaction.atomic
def _complete_if_nothing_left(target: int) -> bool:
    if any(stale_rows_left(target).values()):
        return False
    state = _locked_state(target)
    if state.value.get("completed_version") == target:
        return True
    state.value["completed_version"] = target
    state.value["completed_at"] = timezone.now().isoformat()
    state.save(update_fields=["value", "updated_at"])
    audit_record(
        actor=Actor.system(),
        action=AuditAction.PEPPER_ROTATION_COMPLETED,
        object_type="pepper_version",
        object_id=str(target),
        details={"tables": state.value.get("tables", {})},
    )
    return True

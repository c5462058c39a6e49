"""Alerts to watching members (api.md "Monitoring"), created once per (watch, cause).

Case alerts. Whenever a case may have become visible to lookups or left them (submitted,
restored after a rejected dispute, withdrawn, removed, expired, dispute overdue), the case
life cycle queues `alerts_for_cases` through the outbox on commit. That task does not trust
the event it was queued for: it RECONCILES each case with its state now. Under the case's
row lock (the lock every status change takes first) it asks whether lookups can see the case
and compares with the alerts each watch already has about it. The alerts of one (watch,
case) alternate, case.reported then case.cleared then case.reported..., so their count says
which comes next:

    visible now and an even number so far   -> case.reported   (cause "case:<id>:<count>")
    not visible and an odd number so far    -> case.cleared    (cause "case:<id>:<count>")

Hence: a task run twice, retried, published twice by the outbox, or run by two workers at
once, adds nothing the second time (the count moved on; and the unique (watch_id, cause)
constraint refuses a second row for one cause even if two runs raced). Tasks that run out of
order cannot invent an alert either: a `reported` run for a case withdrawn meanwhile finds it
invisible and no earlier alert, and does nothing. Only watches of OTHER members that are
live (not past their expiry date) are told; a case's own reporter never is.

Velocity alerts: `velocity_alerts_scan` (a job, every minute) reads the sightings that changed
since its last scan, finds live watches of those identifiers and raises velocity.exceeded when
at least the member's threshold of other members looked the identifier up within 24 hours,
at most once per watch per 24 hours. The lookup's single statement is untouched.
"""

import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from registry.ids import uuid7
from registry.models import (
    Alert,
    AlertType,
    Case,
    CaseIdentifier,
    Member,
    RegistryState,
    Sighting,
    Watch,
)
from registry.selectors.cases import matchable_cases_q
from registry.sql import compact, execute_binary

VELOCITY_WINDOW = timedelta(hours=24)
VELOCITY_STATE_KEY = "velocity_alerts"
# Sightings are stamped with the lookup's clock before it commits: a scan re-reads this much
# before its last mark, so a lookup that committed late is still seen (re-reading costs
# nothing more: a watch alerted in the last 24 hours is skipped).
VELOCITY_OVERLAP = timedelta(minutes=5)
VELOCITY_LOCK = 0x57415443  # pg advisory lock: one velocity scan at a time
CHUNK = 500

_ALERT_COLUMNS = {
    "id": "uuid",
    "member_id": "bigint",
    "watch_id": "uuid",
    "type": "text",
    "cause": "text",
    "created_at": "timestamptz",
    "label": "text",
    "kind": "text",
    "fingerprint": "text",
    "case_id": "uuid",
    "case": "jsonb",
    "velocity": "jsonb",
}
_ALERT_TABLE = Alert._meta.db_table
_INSERT_ALERTS_SQL = compact(f"""
    INSERT INTO {_ALERT_TABLE} ({", ".join(f'"{c}"' for c in _ALERT_COLUMNS)})
    SELECT * FROM unnest({", ".join(f"%({c})b::{t}[]" for c, t in _ALERT_COLUMNS.items())})
    ON CONFLICT (watch_id, cause) DO NOTHING
    RETURNING id
""")  # noqa: S608 - the table and columns are the code's own, values are parameters

# Live watches of other members on any identifier of the given cases, with how many alerts
# each already has about that case.
_CASE_WATCHERS_SQL = compact(f"""
    SELECT w.id, w.member_id, w.label, w.kind, w.fingerprint, ci.case_id,
           (SELECT count(*) FROM {_ALERT_TABLE} a WHERE a.watch_id = w.id
              AND a.case_id = ci.case_id) AS alerts
    FROM {CaseIdentifier._meta.db_table} ci
    JOIN {Case._meta.db_table} c ON c.id = ci.case_id
    JOIN {Watch._meta.db_table} w ON w.digest = ci.digest AND w.kind = ci.kind
         AND w.pepper_version = ci.pepper_version
    WHERE ci.case_id = ANY(%(cases)s::uuid[]) AND w.member_id <> c.member_id
      AND w.expires_on >= %(today)s
""")  # noqa: S608

# Live watches that had a case.reported about one of the given (now invisible) cases, with
# their alert count about it. The case's identifiers may be gone: the alerts remember.
_CASE_ALERTED_SQL = compact(f"""
    SELECT w.id, w.member_id, w.label, w.kind, w.fingerprint, a.case_id, count(*) AS alerts
    FROM {_ALERT_TABLE} a
    JOIN {Watch._meta.db_table} w ON w.id = a.watch_id
    WHERE a.case_id = ANY(%(cases)s::uuid[]) AND w.expires_on >= %(today)s
    GROUP BY w.id, a.case_id
""")  # noqa: S608


def alerts_for_cases(*, case_ids: list) -> int:
    """Reconcile the alerts of these cases with their visibility now; returns how many
    alerts were created. Idempotent; safe to run concurrently."""
    ids = sorted({uuid.UUID(str(pk)) for pk in case_ids})
    created = 0
    for start in range(0, len(ids), CHUNK):
        created += len(_reconcile(ids[start : start + CHUNK]))
    return created


@transaction.atomic
def _reconcile(ids: list[uuid.UUID]) -> list:
    now = timezone.now()
    today = timezone.localdate(now)
    # The same lock every status change takes first (id order: two runs never deadlock).
    cases = {
        case.pk: case for case in Case.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    visible = set(
        Case.objects.filter(pk__in=list(cases))
        .filter(matchable_cases_q())
        .values_list("pk", flat=True)
    )
    hidden = [pk for pk in cases if pk not in visible]
    rows = []
    with connection.cursor() as cursor:
        if visible:
            cursor.execute(_CASE_WATCHERS_SQL, {"cases": list(visible), "today": today})
            seen = set()
            for watch_id, member_id, label, kind, fingerprint, case_id, count in cursor.fetchall():
                # A case holding the watched identifier under two kinds... is one alert.
                if (watch_id, case_id) in seen or count % 2 == 1:
                    continue
                seen.add((watch_id, case_id))
                rows.append(
                    _case_alert(
                        AlertType.CASE_REPORTED,
                        (watch_id, member_id, label, kind, fingerprint),
                        cases[case_id],
                        count,
                        now,
                    )
                )
        if hidden:
            cursor.execute(_CASE_ALERTED_SQL, {"cases": hidden, "today": today})
            for watch_id, member_id, label, kind, fingerprint, case_id, count in cursor.fetchall():
                if count % 2 == 0:
                    continue
                rows.append(
                    _case_alert(
                        AlertType.CASE_CLEARED,
                        (watch_id, member_id, label, kind, fingerprint),
                        cases[case_id],
                        count,
                        now,
                    )
                )
    return alerts_insert(rows)


def _case_alert(alert_type: str, watch: tuple, case: Case, count: int, now: datetime) -> dict:
    watch_id, member_id, label, kind, fingerprint = watch
    return {
        "id": uuid7(),
        "member_id": member_id,
        "watch_id": watch_id,
        "type": alert_type,
        "cause": f"case:{case.pk}:{count}",
        "created_at": now,
        "label": label,
        "kind": kind,
        "fingerprint": fingerprint,
        "case_id": case.pk,
        "case": {
            "case_id": str(case.pk),
            "category": case.category_id,
            "confirmed_at": case.confirmed_at.isoformat(),
            "status": case.status,
        },
        "velocity": None,
    }


def alerts_insert(rows: list[dict]) -> list:
    """Insert alert rows (dicts of _ALERT_COLUMNS) in one statement; a row whose (watch,
    cause) exists already is skipped. Returns the ids inserted. Runs in the caller's
    transaction, which also queues their webhook deliveries."""
    if not rows:
        return []
    params = {column: [row[column] for row in rows] for column in _ALERT_COLUMNS}
    for column in ("case", "velocity"):
        params[column] = [None if v is None else json.dumps(v) for v in params[column]]
    inserted = [row[0] for row in execute_binary(_INSERT_ALERTS_SQL, params)]
    _after_insert(inserted)
    return inserted


def _after_insert(alert_ids: list) -> None:
    """Hook for webhook deliveries (registry/services/webhooks.py) of new alerts."""
    if not alert_ids:
        return
    try:
        from registry.services.webhooks import deliveries_create
    except ImportError:  # no webhooks in this build
        return
    deliveries_create(alert_ids=alert_ids)


# --- velocity ------------------------------------------------------------------------------

_SIGHTING = Sighting._meta.db_table
_VELOCITY_SQL = compact(f"""
    WITH recent AS (
        SELECT DISTINCT digest, kind, pepper_version FROM {_SIGHTING}
        WHERE last_seen_at > %(scan_from)s
    ),
    counted AS (
        SELECT w.id, w.member_id, w.label, w.kind, w.fingerprint,
               (SELECT count(DISTINCT s.member_id) FROM {_SIGHTING} s
                WHERE s.digest = w.digest AND s.kind = w.kind
                  AND s.pepper_version = w.pepper_version
                  AND s.member_id <> w.member_id AND s.last_seen_at > %(since)s) AS looked
        FROM recent r
        JOIN {Watch._meta.db_table} w ON w.digest = r.digest AND w.kind = r.kind
             AND w.pepper_version = r.pepper_version
        WHERE w.expires_on >= %(today)s
    )
    SELECT counted.*, COALESCE(m.velocity_alert_threshold, %(default)s) AS threshold
    FROM counted JOIN {Member._meta.db_table} m ON m.id = counted.member_id
    WHERE counted.looked >= COALESCE(m.velocity_alert_threshold, %(default)s)
      AND NOT EXISTS (SELECT 1 FROM {_ALERT_TABLE} a WHERE a.watch_id = counted.id
                      AND a.type = 'velocity.exceeded' AND a.created_at > %(since)s)
""")  # noqa: S608


@transaction.atomic
def velocity_alerts_scan(*, now: datetime | None = None) -> dict:
    """One scan (see the module's docstring). Holds a transaction-level advisory lock: a
    second scan at the same time returns at once instead of doubling alerts."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [VELOCITY_LOCK])
        if not cursor.fetchone()[0]:
            return {"skipped": "another scan is running"}
    state, _created = RegistryState.objects.select_for_update().get_or_create(
        key=VELOCITY_STATE_KEY, defaults={"value": {}}
    )
    since = now - VELOCITY_WINDOW
    scanned_to = state.value.get("scanned_to")
    scan_from = since
    if scanned_to:
        scan_from = max(since, datetime.fromisoformat(scanned_to) - VELOCITY_OVERLAP)
    with connection.cursor() as cursor:
        cursor.execute(
            _VELOCITY_SQL,
            {
                "scan_from": scan_from,
                "since": since,
                "today": timezone.localdate(now),
                "default": settings.REGISTRY_VELOCITY_ALERT_THRESHOLD,
            },
        )
        candidates = cursor.fetchall()
    rows = [
        {
            "id": uuid7(),
            "member_id": member_id,
            "watch_id": watch_id,
            "type": AlertType.VELOCITY_EXCEEDED,
            "cause": f"velocity:{now.isoformat(timespec='seconds')}",
            "created_at": now,
            "label": label,
            "kind": kind,
            "fingerprint": fingerprint,
            "case_id": None,
            "case": None,
            "velocity": {"24h": looked, "threshold": threshold},
        }
        for watch_id, member_id, label, kind, fingerprint, looked, threshold in candidates
    ]
    created = alerts_insert(rows)
    if not scanned_to or datetime.fromisoformat(scanned_to) < now:
        state.value = {"scanned_to": now.isoformat()}
        state.save(update_fields=["value", "updated_at"])
    return {"scanned_from": scan_from.isoformat(), "alerts": len(created)}


def alerts_purge_before(*, before: datetime, batch_size: int, max_batches: int | None) -> int:
    from registry.services.jobs.batches import delete_in_batches

    deleted, _batches = delete_in_batches(
        Alert.objects.filter(created_at__lt=before), batch_size=batch_size, max_batches=max_batches
    )
    return deleted

"""Monthly partitions of the history: lookups, the lookup log, audit events and their seals
(migration 0014). A small manager of our own, not django-postgres-extra's (docs/operations.md
"Partitions" says why): the runtime role owns nothing and may not run DDL, so every change
goes through two SECURITY DEFINER functions that the owner created in the migration:

- registry_partition_create(table, month): the month's partition of any of the four tables
  (NULL if it existed, else the rows it took over from the table's DEFAULT partition);
- registry_partition_drop(table, month): detach and drop a month of lookups or of the lookup
  log, once the month is over. The runtime role may DELETE those rows anyway: no new power.

Audit months are never dropped by the application: `audit_month_drop` runs only as the
owner (manage.py audit_drop_month, with DATABASE_OWNER_URL) and only for an archived month.

Months are UTC calendar months; a partition is named <table>_pYYYYMM. No write is ever lost
for want of a partition: each table has a DEFAULT partition that catches a row whose month
has none (the maintenance job stopped for months, a clock far off), and the job moves such
rows into their month's partition on its next run. The job keeps REGISTRY_PARTITION_MONTHS_
AHEAD months ready; /readyz and the admin raise an alarm below one month ahead.

Retention costs the same at 10M and at 1B rows: a month past REGISTRY_LOOKUP_LOG_RETENTION_
MONTHS goes with one DETACH and one DROP (catalog work), never row by row.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditArchive, AuditEvent, AuditSeal, Lookup, LookupLogEntry
from registry.services.audit import audit_record

# table -> partition key
PARTITIONED = {
    Lookup._meta.db_table: "created_at",
    LookupLogEntry._meta.db_table: "created_at",
    AuditEvent._meta.db_table: "created_at",
    AuditSeal._meta.db_table: "event_created_at",
}
# What the maintenance job drops past retention, the log before its lookups.
RETAINED_BY_MONTHS = (LookupLogEntry._meta.db_table, Lookup._meta.db_table)
AUDIT_TABLES = (AuditEvent._meta.db_table, AuditSeal._meta.db_table)


class PartitionRefused(Exception):
    """An operation on partitions that its preconditions refuse (the message says which)."""


# --- Months ----------------------------------------------------------------------------------
def month_of(moment: datetime) -> date:
    """The first day of `moment`'s UTC month."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC calendar month, as aware datetimes."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = add_months(month, 1)
    return start, datetime(following.year, following.month, 1, tzinfo=UTC)


def parse_month(text: str) -> date:
    """'2026-11' -> date(2026, 11, 1)."""
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise PartitionRefused(f"{text!r} is not a month (YYYY-MM)") from None
    return date(parsed.year, parsed.month, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


# --- Reads -----------------------------------------------------------------------------------
def partitions_existing(table: str) -> list[date]:
    """The months that have a partition of `table`, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    prefix = f"{table}_p"
    months = []
    for name in names:
        suffix = name.removeprefix(prefix)
        if name.startswith(prefix) and len(suffix) == 6 and suffix.isdigit():
            months.append(date(int(suffix[:4]), int(suffix[4:]), 1))
    return sorted(months)


def partitions_months_ahead(*, now: datetime | None = None) -> int:
    """Whole months after the current one that every partitioned table has ready (0 when even
    the current month has none: its rows go to the DEFAULT partition)."""
    current = month_of(now or timezone.now())
    ahead = None
    for table in PARTITIONED:
        months = set(partitions_existing(table))
        count = 0
        if current in months:
            while add_months(current, count + 1) in months:
                count += 1
        ahead = count if ahead is None else min(ahead, count)
    return ahead or 0


def partitions_alarm(*, now: datetime | None = None) -> bool:
    return partitions_months_ahead(now=now) < 1


def partitions_default_months() -> dict[str, list[date]]:
    """The months of the rows that landed in each DEFAULT partition (normally none). The
    DEFAULT partition is kept empty, so this reads nothing at any size."""
    found = {}
    with connection.cursor() as cursor:
        for table, key in PARTITIONED.items():
            cursor.execute(
                f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC')::date "  # noqa: S608
                f"FROM {table}_default ORDER BY 1"
            )
            months = [row[0] for row in cursor.fetchall()]
            if months:
                found[table] = months
    return found


# --- Writes by the application (through the SECURITY DEFINER functions) ---------------------
# A partition's DDL needs an ACCESS EXCLUSIVE lock on its parent, and every lookup that
# arrives while it waits queues behind it: so the database functions give up after 200 ms
# (migration 0019) and the job tries again a little later, rather than stall the API.
LOCK_ATTEMPTS = 50
T = TypeVar("T")


def _with_lock_retries(work: Callable[[], T]) -> T:
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            return work()
        except OperationalError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                raise
            if attempt == LOCK_ATTEMPTS:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def partition_create(*, actor: Actor, table: str, month: date) -> int | None:
    """The month's partition of `table` (see `_partition_create`), retried while its parent is
    busy."""
    return _with_lock_retries(lambda: _partition_create(actor=actor, table=table, month=month))


def partition_drop(*, actor: Actor, table: str, month: date) -> bool:
    """Detach and drop a month (see `_partition_drop`), retried while its parent is busy."""
    return _with_lock_retries(lambda: _partition_drop(actor=actor, table=table, month=month))


@transaction.atomic
def _partition_create(*, actor: Actor, table: str, month: date) -> int | None:
    """The month's partition of `table`. None if it existed; else the rows it took over from
    the DEFAULT partition, and an audit event."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT registry_partition_create(%s, %s)", [table, month])
        moved = cursor.fetchone()[0]
    if moved is not None:
        audit_record(
            actor=actor,
            action=AuditAction.PARTITION_CREATED,
            object_type="partition",
            object_id=partition_name(table, month),
            details={"table": table, "month": f"{month:%Y-%m}", "moved_from_default": moved},
        )
    return moved


@transaction.atomic
def _partition_drop(*, actor: Actor, table: str, month: date) -> bool:
    """Detach and drop a month of lookups or of the lookup log (the database function refuses
    the audit tables and any month not yet over). False if there was no such partition."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT registry_partition_drop(%s, %s)", [table, month])
        dropped = cursor.fetchone()[0]
    if dropped:
        audit_record(
            actor=actor,
            action=AuditAction.PARTITION_DROPPED,
            object_type="partition",
            object_id=partition_name(table, month),
            details={"table": table, "month": f"{month:%Y-%m}"},
        )
    return dropped


def partitions_retention_start(*, now: datetime) -> date:
    """The oldest month still kept: every month before it is wholly older than
    REGISTRY_LOOKUP_LOG_RETENTION_MONTHS."""
    return add_months(month_of(now), -settings.REGISTRY_LOOKUP_LOG_RETENTION_MONTHS)


def partitions_maintain(*, now: datetime) -> dict:
    """The maintenance job's work, idempotent: move rows out of the DEFAULT partitions into
    their months, create the months up to REGISTRY_PARTITION_MONTHS_AHEAD ahead, then drop the
    lookup and lookup-log months wholly past retention. Each step is its own transaction."""
    actor = Actor.system()
    current = month_of(now)
    summary: dict = {"created": [], "moved_from_default": 0, "dropped": []}
    wanted = [add_months(current, n) for n in range(settings.REGISTRY_PARTITION_MONTHS_AHEAD + 1)]
    strays = partitions_default_months()
    for table in PARTITIONED:
        existing = set(partitions_existing(table))
        for month in sorted(set(strays.get(table, [])) | set(wanted)):
            if month in existing and month not in strays.get(table, []):
                continue
            moved = partition_create(actor=actor, table=table, month=month)
            if moved is not None:
                summary["created"].append(partition_name(table, month))
                summary["moved_from_default"] += moved
    keep_from = partitions_retention_start(now=now)
    for table in RETAINED_BY_MONTHS:
        for month in partitions_existing(table):
            if month < keep_from and partition_drop(actor=actor, table=table, month=month):
                summary["dropped"].append(partition_name(table, month))
    summary["kept_from"] = f"{keep_from:%Y-%m}"
    summary["months_ahead"] = partitions_months_ahead(now=now)
    return summary


# --- The owner's audit month drop --------------------------------------------------------------
@dataclass(frozen=True)
class AuditMonthDrop:
    month: date
    events: int
    first_seq: int | None
    last_seq: int | None


def _audit_month_facts(month: date) -> dict:
    start, end = month_bounds(month)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM registry_auditevent WHERE created_at >= %s AND created_at < %s",
            [start, end],
        )
        events = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*), min(seq), max(seq) FROM registry_auditseal "
            "WHERE event_created_at >= %s AND event_created_at < %s",
            [start, end],
        )
        seals, first_seq, last_seq = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM registry_auditevent e WHERE e.created_at >= %s "
            "AND e.created_at < %s AND NOT EXISTS (SELECT FROM registry_auditseal s "
            "WHERE s.event_id = e.id AND s.event_created_at = e.created_at)",
            [start, end],
        )
        unsealed = cursor.fetchone()[0]
        cursor.execute(
            "SELECT min(created_at) FROM registry_auditevent WHERE created_at < %s", [start]
        )
        older = cursor.fetchone()[0]
    return {
        "events": events,
        "seals": seals,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "unsealed": unsealed,
        "older_events": older,
    }


def _is_owner(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
            "WHERE c.oid = %s::regclass",
            [table],
        )
        return bool(cursor.fetchone()[0])


@transaction.atomic
def audit_month_drop(*, actor: Actor, month: date, now: datetime | None = None) -> AuditMonthDrop:
    """Drop a month of the audit trail (its events and their seals) — as the owner only, and
    only once a verified archive of that very month is recorded (AuditArchive: same number of
    events and the same seals), every event of it is sealed, the month is older than the
    audit retention period and no older month is left (the chain is dropped from its start).
    Records AuditAction.AUDIT_MONTH_DROPPED in the current month."""
    now = now or timezone.now()
    current = month_of(now)
    retention = settings.REGISTRY_AUDIT_RETENTION_MONTHS
    if month >= add_months(current, -retention):
        raise PartitionRefused(
            f"{month:%Y-%m} is within the audit retention period ({retention} months)"
        )
    if not all(_is_owner(table) for table in AUDIT_TABLES):
        raise PartitionRefused("only the owner of the audit tables may drop an audit month")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('registry_partitions'))")
    archive = AuditArchive.objects.filter(month=month).first()
    if archive is None:
        raise PartitionRefused(f"no verified archive of {month:%Y-%m} is recorded")
    facts = _audit_month_facts(month)
    if facts["older_events"] is not None:
        raise PartitionRefused(f"an older month ({month_of(facts['older_events']):%Y-%m}) is left")
    if facts["unsealed"]:
        raise PartitionRefused(f"{facts['unsealed']} events of {month:%Y-%m} are not sealed")
    if (facts["events"], facts["seals"], facts["first_seq"], facts["last_seq"]) != (
        archive.events,
        archive.events,
        archive.first_seq if archive.events else None,
        archive.last_seq if archive.events else None,
    ):
        raise PartitionRefused(
            f"the archive of {month:%Y-%m} does not describe what the database holds "
            f"({facts['events']} events, seals {facts['first_seq']}..{facts['last_seq']})"
        )
    with connection.cursor() as cursor:
        for table in AUDIT_TABLES:
            part = partition_name(table, month)
            cursor.execute("SELECT to_regclass(%s)", [part])
            if cursor.fetchone()[0] is None:
                continue
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{part}"')
            cursor.execute(f'DROP TABLE "{part}"')
        # Rows of the month that sat in a DEFAULT partition: none, or the events count above
        # would include them and the partition's drop would leave them. Refuse then.
        for table, key in PARTITIONED.items():
            if table not in AUDIT_TABLES:
                continue
            cursor.execute(
                f"SELECT count(*) FROM {table} WHERE {key} >= %s AND {key} < %s",  # noqa: S608
                list(month_bounds(month)),
            )
            if cursor.fetchone()[0]:
                raise PartitionRefused(
                    f"rows of {month:%Y-%m} are in {table}_default: run the partition "
                    "maintenance job first"
                )
    audit_record(
        actor=actor,
        action=AuditAction.AUDIT_MONTH_DROPPED,
        object_type="audit_archive",
        object_id=str(archive.pk),
        details={
            "month": f"{month:%Y-%m}",
            "events": facts["events"],
            "first_seq": facts["first_seq"],
            "last_seq": facts["last_seq"],
            "file_sha256": archive.file_sha256,
        },
    )
    return AuditMonthDrop(month, facts["events"], facts["first_seq"], facts["last_seq"])

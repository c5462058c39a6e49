"""Monthly range partitions as the benchmark sees them: `<table>_pYYYYMM`, e.g.
`registry_lookuplogentry_p202611`, for the tables the registry partitions by month (Lookup,
LookupLogEntry, AuditEvent, AuditSeal). Everything here works on plain tables too: it asks
`pg_partitioned_table` first and does nothing (or reports "not partitioned") when a table is
not partitioned, so the benchmark runs before and after the partitioning migration.

The seed loads into the parent table (PostgreSQL routes each row to its month); it only
makes sure every month it loads has a partition, creating a missing one under the same name
the registry's partition job uses.
"""

from datetime import date, datetime

LOG_TABLE = "registry_lookuplogentry"
LOOKUP_TABLE = "registry_lookup"


def month_start(moment: date | datetime) -> date:
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """Every month from the one holding `first` to the one holding `last`, inclusive."""
    month, end, out = month_start(first), month_start(last), []
    while month <= end:
        out.append(month)
        month = add_months(month, 1)
    return out


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def is_partitioned(conn, table: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [table]
        ).fetchone()
        is not None
    )


def partition_exists(conn, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is not None


def partition_for(conn, table: str, moment: datetime) -> str | None:
    """The partition of `table` whose bounds hold `moment`, if there is one (whatever its
    name and the time zone of its bounds)."""
    row = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = %s::regclass
                  AND %s::timestamptz >= (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                          'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
                  AND %s::timestamptz < (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                         'TO \\(''([^'']+)''\\)'))[1]::timestamptz""",
        [table, moment, moment],
    ).fetchone()
    return row[0] if row else None


def ensure_month_partitions(conn, table: str, months: list[date]) -> list[str]:
    """Create `<table>_pYYYYMM` for each month that has none, through the registry's own
    `registry_partition_create` (migration 0015: UTC month bounds, the parent's privileges and,
    for the audit tables, their triggers), so the benchmark's partitions are the registry's.
    Returns the partitions created (none for a plain table)."""
    if not is_partitioned(conn, table):
        return []
    created = []
    for month in months:
        name = partition_name(table, month)
        if partition_exists(conn, name):
            continue
        conn.execute("SELECT registry_partition_create(%s, %s)", [table, month])
        created.append(name)
    return created

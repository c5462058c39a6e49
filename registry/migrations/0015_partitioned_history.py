"""Issue 17: lookups, the lookup log, audit events and their seals in monthly RANGE partitions.

Each of the four tables is rebuilt as a partitioned table WITHOUT losing a row:

    rename T -> T_old (its indexes and identity sequence get *_old names)
    create T (LIKE T_old: same columns, NOT NULLs, CHECKs, identity) PARTITION BY RANGE (key)
    re-create T_old's indexes and foreign keys on T (partitioned indexes: one per partition),
        the primary key (and AuditSeal's unique event_id) widened with the partition key
    copy T_old's privileges to T; the audit tables' append-only triggers on T
    create T_default and one partition per month from the oldest row to REGISTRY_PARTITION_
        MONTHS_AHEAD months ahead (registry_partition_create, below)
    INSERT INTO T SELECT ... FROM T_old; the identity sequence continues where T_old's stopped
    drop T_old

Partition keys: created_at (Lookup, LookupLogEntry, AuditEvent) and AuditSeal's new
event_created_at, the sealed event's created_at, so that an event month and its seals drop
together. Months are UTC calendar months; partitions are named <table>_pYYYYMM.

Two SECURITY DEFINER functions, owned by the schema's owner, let the runtime role (which owns
nothing and may not run DDL) maintain partitions without any other new power:
- registry_partition_create(table, month): the month's partition of one of the four tables,
  moving that month's rows out of the DEFAULT partition if any landed there; audit partitions
  get the append-only triggers and their parent's privileges (no UPDATE/DELETE/TRUNCATE);
- registry_partition_drop(table, month): detach and drop a month of lookups or of the lookup
  log, wholly before the current month (the runtime role may already DELETE those rows).
  Audit months are dropped only by the owner (manage.py audit_drop_month), after an archive.

The reverse rebuilds plain tables the same way (every row kept).
"""

# ruff: noqa: S608 - every name in this migration's SQL is its own (the four tables, their
# columns read from the catalog); values are parameters.
from datetime import date

from django.conf import settings
from django.db import migrations, models

# table -> partition key
PARTITIONED = {
    "registry_lookup": "created_at",
    "registry_lookuplogentry": "created_at",
    "registry_auditevent": "created_at",
    "registry_auditseal": "event_created_at",
}
AUDIT = ("registry_auditevent", "registry_auditseal")
DROPPABLE_BY_APP = ("registry_lookup", "registry_lookuplogentry")
# The log's foreign key to its lookup: a foreign key must reference a unique key, and a
# partitioned table's unique keys all include its partition key; the log keeps the Lookup's
# id only. Both are dropped by month together, so nothing is left dangling for long.
LOG_LOOKUP_FK = (
    "registry_lookuplogen_lookup_id_3a8225b2_fk_registry_",
    "FOREIGN KEY (lookup_id) REFERENCES registry_lookup(id) DEFERRABLE INITIALLY DEFERRED",
)
SEAL_UNIQUE = ("registry_auditseal_event_id_key", "audit_seal_once_per_event")
# How far back and ahead registry_partition_create agrees to go (a partition per month costs
# planning time: the runtime role must not be able to create thousands). Rows outside land in
# the DEFAULT partition, never lost.
PAST_MONTHS_LIMIT = 300
AHEAD_MONTHS_LIMIT = 36

FUNCTIONS_SQL = """
CREATE OR REPLACE FUNCTION registry_partition_create(parent text, month date)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = __SCHEMA__, pg_temp
SET lock_timeout = '10s'
AS $fn$
-- The month's partition of `parent`: NULL if it existed, else how many rows it took over
-- from the DEFAULT partition (0 normally).
DECLARE
    key text;
    first_day date := date_trunc('month', month)::date;
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    part text;
    lo timestamptz;
    hi timestamptz;
    moved bigint := 0;
    grant_row record;
BEGIN
    key := CASE parent
        WHEN 'registry_lookup' THEN 'created_at'
        WHEN 'registry_lookuplogentry' THEN 'created_at'
        WHEN 'registry_auditevent' THEN 'created_at'
        WHEN 'registry_auditseal' THEN 'event_created_at'
    END;
    IF key IS NULL THEN
        RAISE EXCEPTION 'registry_partition_create: % is not a partitioned registry table', parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF first_day < (this_month - interval '__PAST__ months')
       OR first_day > (this_month + interval '__AHEAD__ months') THEN
        RAISE EXCEPTION 'registry_partition_create: month % out of range', first_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    part := parent || '_p' || to_char(first_day, 'YYYYMM');
    -- one maintainer at a time (two job runs, or the job and the owner's command)
    PERFORM pg_advisory_xact_lock(hashtext('registry_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    lo := first_day::timestamp AT TIME ZONE 'UTC';
    hi := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    IF to_regclass(parent || '_default') IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %I WHERE %I >= $1 AND %I < $2',
                       parent || '_default', key, key) INTO moved USING lo, hi;
    END IF;
    IF moved = 0 THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       part, parent, lo, hi);
    ELSE
        -- Rows that landed in the DEFAULT partition: a partition for their month cannot be
        -- created while they are there. Move them into a new table, then attach it.
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       part, parent);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE %I >= $1 AND %I < $2',
                       part, parent || '_default', key, key) USING lo, hi;
        IF parent IN ('registry_auditevent', 'registry_auditseal') THEN
            -- A move, not a deletion: the rows are in `part` (same transaction). Only the
            -- owner may switch triggers, and only for this statement.
            EXECUTE format('ALTER TABLE %I DISABLE TRIGGER USER', parent || '_default');
        END IF;
        EXECUTE format('DELETE FROM %I WHERE %I >= $1 AND %I < $2',
                       parent || '_default', key, key) USING lo, hi;
        IF parent IN ('registry_auditevent', 'registry_auditseal') THEN
            EXECUTE format('ALTER TABLE %I ENABLE TRIGGER USER', parent || '_default');
        END IF;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       parent, part, lo, hi);
    END IF;
    PERFORM registry_partition_protect(parent, part);
    RETURN moved;
END
$fn$;

CREATE OR REPLACE FUNCTION registry_partition_protect(parent text, part text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = __SCHEMA__, pg_temp
AS $fn$
-- A partition gets exactly its parent's privileges (not the owner's default privileges,
-- which would let the runtime role UPDATE or DELETE an audit partition directly); an audit
-- partition also refuses TRUNCATE (row triggers are cloned from the parent by PostgreSQL,
-- statement triggers are not).
DECLARE
    grant_row record;
BEGIN
    IF parent NOT IN ('registry_lookup', 'registry_lookuplogentry',
                      'registry_auditevent', 'registry_auditseal') THEN
        RAISE EXCEPTION 'registry_partition_protect: % refused', parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR grant_row IN
        SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = part::regclass AND acl.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON %I FROM %s', part, grant_row.grantee);
    END LOOP;
    FOR grant_row IN
        SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                    ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee,
               acl.privilege_type
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = parent::regclass AND acl.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %I TO %s', grant_row.privilege_type, part, grant_row.grantee);
    END LOOP;
    IF parent IN ('registry_auditevent', 'registry_auditseal') AND NOT EXISTS (
        SELECT FROM pg_trigger WHERE tgrelid = part::regclass AND tgname = part || '_no_truncate'
    ) THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change()',
                       part || '_no_truncate', part);
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION registry_partition_drop(parent text, month date)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = __SCHEMA__, pg_temp
SET lock_timeout = '10s'
AS $fn$
-- Detach and drop a month of lookups or of the lookup log (never of the audit trail), wholly
-- before the current month. False if there was no such partition.
DECLARE
    first_day date := date_trunc('month', month)::date;
    part text;
BEGIN
    IF parent NOT IN ('registry_lookup', 'registry_lookuplogentry') THEN
        RAISE EXCEPTION 'registry_partition_drop: % may not be dropped by the application', parent
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF first_day + interval '1 month' > date_trunc('month', now() AT TIME ZONE 'UTC') THEN
        RAISE EXCEPTION 'registry_partition_drop: month % is not over', first_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    part := parent || '_p' || to_char(first_day, 'YYYYMM');
    PERFORM pg_advisory_xact_lock(hashtext('registry_partitions'));
    IF to_regclass(part) IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part);
    EXECUTE format('DROP TABLE %I', part);
    RETURN true;
END
$fn$;

REVOKE ALL ON FUNCTION registry_partition_create(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION registry_partition_protect(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION registry_partition_drop(text, date) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry_app') THEN
        GRANT EXECUTE ON FUNCTION registry_partition_create(text, date) TO registry_app;
        GRANT EXECUTE ON FUNCTION registry_partition_drop(text, date) TO registry_app;
    END IF;
END $$;
"""

DROP_FUNCTIONS_SQL = """
DROP FUNCTION IF EXISTS registry_partition_create(text, date);
DROP FUNCTION IF EXISTS registry_partition_drop(text, date);
DROP FUNCTION IF EXISTS registry_partition_protect(text, text);
"""

APPEND_ONLY_TRIGGERS = """
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
"""


def _months(first: date, last: date) -> list[date]:
    months, month = [], date(first.year, first.month, 1)
    while month <= last:
        months.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _rows(cursor, sql, params=None):
    cursor.execute(sql, params)
    return cursor.fetchall()


def _rebuild(cursor, table: str, key: str, *, partitioned: bool) -> None:
    """Rename `table` to <table>_old and create `table` again, partitioned or plain, with the
    same columns, indexes, constraints, privileges and (audit) triggers. The copy and the
    drop of the old table come later, once every table and partition exists."""
    old = f"{table}_old"
    indexes = _rows(
        cursor,
        """
        SELECT i.relname, x.indisprimary, c.conname IS NOT NULL, pg_get_indexdef(x.indexrelid),
               c.conname, pg_get_constraintdef(c.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
            AND c.contype IN ('p', 'u')
        WHERE x.indrelid = %s::regclass
        ORDER BY i.relname
        """,
        [table],
    )
    foreign_keys = _rows(
        cursor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [table],
    )
    sequence = None
    if "id" in _columns(cursor, table):
        sequence = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])[0][0]
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    for number, (name, *_rest) in enumerate(indexes):
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{old}_index{number}"')
    if sequence:
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {table}_id_seq_old")
    columns = "LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY"
    columns = columns.format(old=old)
    extra = ""
    if table == "registry_auditseal" and partitioned:
        extra = ", event_created_at timestamptz NOT NULL"
    partition_by = f" PARTITION BY RANGE ({key})" if partitioned else ""
    cursor.execute(f"CREATE TABLE {table} ({columns}{extra}){partition_by}")
    if table == "registry_auditseal" and not partitioned:
        cursor.execute("ALTER TABLE registry_auditseal DROP COLUMN event_created_at")
    for _name, _is_primary, is_constraint, index_sql, conname, condef in indexes:
        if not is_constraint:
            cursor.execute(index_sql.replace(" ON ONLY ", " ON "))
            continue
        kind, _, cols = condef.partition(" (")
        cols = [c.strip() for c in cols.rstrip(")").split(",")]
        if partitioned and key not in cols:
            cols.append(key)
        if not partitioned and key in cols and len(cols) > 1:
            cols.remove(key)
        if table == "registry_auditseal" and kind == "UNIQUE":
            conname = SEAL_UNIQUE[1] if partitioned else SEAL_UNIQUE[0]
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {conname} {kind} ({', '.join(cols)})")
    for conname, condef in foreign_keys:
        if table == "registry_lookuplogentry" and conname == LOG_LOOKUP_FK[0]:
            continue
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {conname} {condef}")
    _copy_privileges(cursor, old, table)
    if table in AUDIT:
        cursor.execute(APPEND_ONLY_TRIGGERS.format(table=table))


def _copy_privileges(cursor, source: str, target: str) -> None:
    """`target` gets exactly `source`'s privileges (it was created with the owner's default
    privileges, which for an audit table would be too many)."""
    grantee = (
        "CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END"
    )
    for (role,) in _rows(
        cursor,
        f"SELECT DISTINCT {grantee} FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) acl "
        "WHERE c.oid = %s::regclass AND acl.grantee <> c.relowner",
        [target],
    ):
        cursor.execute(f'REVOKE ALL ON "{target}" FROM {role}')
    for role, privilege in _rows(
        cursor,
        f"SELECT {grantee}, acl.privilege_type FROM pg_class c "
        "CROSS JOIN LATERAL aclexplode(c.relacl) acl "
        "WHERE c.oid = %s::regclass AND acl.grantee <> c.relowner",
        [source],
    ):
        cursor.execute(f'GRANT {privilege} ON "{target}" TO {role}')


def _copy_sequence(cursor, table: str) -> None:
    """The new identity sequence continues where the old one stopped (ids are never reused,
    even those a rolled-back insert took)."""
    if not _rows(cursor, "SELECT to_regclass(%s)", [f"{table}_id_seq_old"])[0][0]:
        return
    last_value, is_called = _rows(cursor, f"SELECT last_value, is_called FROM {table}_id_seq_old")[
        0
    ]
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, last_value, is_called]
    )
    _copy_sequence_privileges(cursor, f"{table}_id_seq_old", table)


def _copy_sequence_privileges(cursor, old_sequence: str, table: str) -> None:
    new_sequence = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [table])[0][0]
    for role, privilege in _rows(
        cursor,
        "SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' "
        "ELSE quote_ident(pg_get_userbyid(acl.grantee)) END, acl.privilege_type "
        "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) acl "
        "WHERE c.oid = %s::regclass AND acl.grantee <> c.relowner",
        [old_sequence],
    ):
        cursor.execute(f"GRANT {privilege} ON SEQUENCE {new_sequence} TO {role}")


def _columns(cursor, table: str) -> list[str]:
    return [
        name
        for (name,) in _rows(
            cursor,
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            [table],
        )
    ]


def _copy_rows(cursor, table: str) -> None:
    old = f"{table}_old"
    columns = [c for c in _columns(cursor, table) if c != "event_created_at"]
    listed = ", ".join(columns)
    if table == "registry_auditseal" and "event_created_at" in _columns(cursor, table):
        # A seal whose event is missing (only a superuser could have deleted it; verify_audit
        # reports it) is kept too, in the month it was sealed.
        cursor.execute(
            f"INSERT INTO {table} ({listed}, event_created_at) "
            f"SELECT {', '.join('s.' + c for c in columns)}, "
            "COALESCE(e.created_at, s.sealed_at) "
            "FROM registry_auditseal_old s "
            "LEFT JOIN registry_auditevent_old e ON e.id = s.event_id"
        )
    else:
        cursor.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {old}")
    copied = cursor.rowcount
    (before,) = _rows(cursor, f"SELECT count(*) FROM {old}")[0]
    if copied != before:
        raise RuntimeError(f"{table}: copied {copied} rows of {before}")


def _month_of(moment) -> date:
    return date(moment.year, moment.month, 1)


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        schema = _rows(cursor, "SELECT current_schema()")[0][0]
        cursor.execute(
            FUNCTIONS_SQL.replace("__SCHEMA__", f'"{schema}"')
            .replace("__PAST__", str(PAST_MONTHS_LIMIT))
            .replace("__AHEAD__", str(AHEAD_MONTHS_LIMIT))
        )
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        for table, key in PARTITIONED.items():
            _rebuild(cursor, table, key, partitioned=True)
        this_month = _month_of(_rows(cursor, "SELECT now() AT TIME ZONE 'UTC'")[0][0])
        lowest = _add_months(this_month, -PAST_MONTHS_LIMIT)
        ahead = min(settings.REGISTRY_PARTITION_MONTHS_AHEAD, AHEAD_MONTHS_LIMIT)
        for table in PARTITIONED:
            cursor.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
            cursor.execute("SELECT registry_partition_protect(%s, %s)", [table, f"{table}_default"])
            source = "registry_auditevent_old" if table == "registry_auditseal" else f"{table}_old"
            (oldest,) = _rows(cursor, f"SELECT min(created_at) FROM {source}")[0]
            first = max(_month_of(oldest), lowest) if oldest else this_month
            for month in _months(first, _add_months(this_month, ahead)):
                cursor.execute("SELECT registry_partition_create(%s, %s)", [table, month])
        for table in PARTITIONED:
            _copy_sequence(cursor, table)
            _copy_rows(cursor, table)
        for table in ("registry_lookuplogentry", "registry_lookup", *AUDIT):
            cursor.execute(f'DROP TABLE "{table}_old"')


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table, key in PARTITIONED.items():
            _rebuild(cursor, table, key, partitioned=False)
        for table in PARTITIONED:
            _copy_sequence(cursor, table)
            _copy_rows(cursor, table)
        cursor.execute(
            f"ALTER TABLE registry_lookuplogentry ADD CONSTRAINT {LOG_LOOKUP_FK[0]} "
            f"{LOG_LOOKUP_FK[1]}"
        )
        for table in ("registry_lookuplogentry", "registry_lookup", *AUDIT):
            cursor.execute(f'DROP TABLE "{table}_old" CASCADE')
        cursor.execute(DROP_FUNCTIONS_SQL)


SCHEDULE = [
    (
        "registry: partition maintenance",
        "registry.jobs.partition_maintenance",
        ("crontab", "45", "2"),
        3000,
        "Create monthly partitions ahead; drop lookup and lookup-log months past retention.",
    ),
]
OLD_LOG_RETENTION = "Delete lookup log rows and sightings older than the longest velocity window."
NEW_LOG_RETENTION = "Delete sightings older than the longest velocity window."


def seed_schedule(apps, schema_editor):
    module = __import__("registry.migrations.0011_watches_alerts", fromlist=["seed_schedule"])
    module.SCHEDULE, original = SCHEDULE, module.SCHEDULE
    try:
        module.seed_schedule(apps, schema_editor)
    finally:
        module.SCHEDULE = original
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(
        name="registry: lookup log retention", description=OLD_LOG_RETENTION
    ).update(description=NEW_LOG_RETENTION)


AUDIT_ARCHIVE_SQL = """
CREATE TRIGGER registry_auditarchive_append_only BEFORE UPDATE OR DELETE ON registry_auditarchive
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER registry_auditarchive_no_truncate BEFORE TRUNCATE ON registry_auditarchive
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(acl.grantee)) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
        WHERE c.oid = 'registry_auditarchive'::regclass AND acl.grantee <> c.relowner
          AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES '
                       'ON registry_auditarchive FROM %s', grant_row.grantee);
    END LOOP;
END $$;
"""


class Migration(migrations.Migration):
    # Not atomic as one block would be for a plain migration? It is: every step above runs in
    # the migration's transaction, so a failure leaves today's tables as they were.
    atomic = True

    dependencies = [
        ("registry", "0014_report_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="lookuplogentry",
                    name="lookup",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="entries",
                        to="registry.lookup",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditseal",
                    name="event_id",
                    field=models.BigIntegerField(),
                ),
                migrations.AddField(
                    model_name="auditseal",
                    name="event_created_at",
                    field=models.DateTimeField(),
                    preserve_default=False,
                ),
                migrations.AddConstraint(
                    model_name="auditseal",
                    constraint=models.UniqueConstraint(
                        fields=("event_id", "event_created_at"), name="audit_seal_once_per_event"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
        migrations.CreateModel(
            name="AuditArchive",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("month", models.DateField(unique=True, verbose_name="month")),
                ("file_sha256", models.CharField(max_length=64, verbose_name="file SHA-256")),
                ("first_seq", models.BigIntegerField(verbose_name="first seal")),
                ("last_seq", models.BigIntegerField(verbose_name="last seal")),
                (
                    "last_hash",
                    models.CharField(
                        blank=True, default="", max_length=64, verbose_name="last seal's hash"
                    ),
                ),
                ("events", models.BigIntegerField(verbose_name="events")),
                ("archived_at", models.DateTimeField(verbose_name="archived at")),
            ],
            options={
                "verbose_name": "audit archive",
                "verbose_name_plural": "audit archives",
                "ordering": ["month"],
            },
        ),
        migrations.RunSQL(
            AUDIT_ARCHIVE_SQL,
            "DROP TRIGGER IF EXISTS registry_auditarchive_append_only ON registry_auditarchive;"
            "DROP TRIGGER IF EXISTS registry_auditarchive_no_truncate ON registry_auditarchive;",
        ),
        migrations.RunPython(seed_schedule, migrations.RunPython.noop),
    ]

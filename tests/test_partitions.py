"""Partitioned history (migration 0014, registry/services/partitions.py): today's tables migrate
without losing a row; the maintenance job creates months ahead, moves rows out of the DEFAULT
partitions and drops lookup and lookup-log months past retention by DDL, never row by row; the
runtime role cannot drop or change the audit trail through any of it."""

import io
import re
import time
from datetime import UTC, datetime

import psycopg
import pysodium
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditArchive, AuditEvent, AuditSeal, Lookup, LookupLogEntry, Member
from registry.services import audit
from registry.services.audit import audit_record, audit_seal, audit_verify
from registry.services.jobs import job_execute
from registry.services.partitions import (
    PARTITIONED,
    add_months,
    month_of,
    partition_create,
    partition_drop,
    partition_name,
    partitions_existing,
    partitions_months_ahead,
)
from tests.test_database_roles import refused, runtime_connection  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("registry", "0013_member_suspension_reason")
AFTER = ("registry", "0015_partitioned_history")
LOG = "registry_lookuplogentry"


def this_month():
    return month_of(timezone.now())


def at(month, day=10, hour=12):
    return datetime(month.year, month.month, day, hour, tzinfo=UTC)


def scalar(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def table_of(model, pk):
    """The partition that holds a row."""
    table = model._meta.db_table
    column = model._meta.pk.column
    return scalar(
        f"SELECT tableoid::regclass::text FROM {table} WHERE {column} = %s",  # noqa: S608
        [pk],
    )


def columns(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def fingerprint(table, cols, order):
    """Row count and an MD5 of every listed column of every row."""
    listed = ", ".join(cols)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), md5(coalesce(string_agg(row({listed})::text, '|' "  # noqa: S608
            f"ORDER BY {order}), '')) FROM {table}"
        )
        return cursor.fetchone()


# --- The migration ----------------------------------------------------------------------------


def seed_old_schema(apps):
    """At 0013: lookups, log rows, audit events across several months (one far back, one a
    month ahead), sealed into a chain with a signed checkpoint, as the code of 0013 did."""
    Member_ = apps.get_model("registry", "Member")
    Lookup_ = apps.get_model("registry", "Lookup")
    Entry = apps.get_model("registry", "LookupLogEntry")
    Event = apps.get_model("registry", "AuditEvent")
    Seal = apps.get_model("registry", "AuditSeal")
    Checkpoint = apps.get_model("registry", "AuditCheckpoint")
    member = Member_.objects.create(code="MIGRATED", name="Migrated Bank")
    current = this_month()
    months = [add_months(current, n) for n in (-70, -13, -2, -1, 0, 1)]
    for n, month in enumerate(months):
        for k in range(3):
            lookup = Lookup_.objects.create(
                member=member,
                purpose="loan_application",
                consent_reference=f"c{n}{k}",
                identifier_count=2,
                match_count=k % 2,
                created_at=at(month, day=1 + k, hour=k),
            )
            for j in range(2):
                Entry.objects.create(
                    lookup=lookup,
                    member=member,
                    kind="phone",
                    digest=bytes([n, k, j]) * 8,
                    pepper_version=1,
                    created_at=lookup.created_at,
                )
            Event.objects.create(
                created_at=at(month, day=1 + k, hour=k),
                actor_type="member",
                member_id=member.pk,
                api_key_prefix="abc",
                officer="",
                action="lookup.performed",
                object_type="lookup",
                object_id=str(lookup.pk),
                details={"n": n, "k": k, "text": "时间"},
            )
    # One event more in the far month, left unsealed would be "inserted": seal all of them.
    prev, seq = audit.GENESIS_HASH, 0
    for event in Event.objects.order_by("id"):
        seq += 1
        digest = audit.chain_hash(prev, event, seq)
        Seal.objects.create(
            seq=seq, event_id=event.pk, prev_hash=prev, hash=digest, sealed_at=timezone.now()
        )
        prev = digest
    public, secret = pysodium.crypto_sign_seed_keypair(bytes.fromhex("44" * 32))
    signed_at = timezone.now().replace(microsecond=0)
    message = audit.checkpoint_message(seq=seq, hash=prev, time=audit._time_text(signed_at))
    Checkpoint.objects.create(
        seq=seq,
        hash=prev,
        signed_at=signed_at,
        key_id=audit.key_id(public.hex()),
        public_key=public.hex(),
        signature=pysodium.crypto_sign_detached(message, secret).hex(),
    )
    return months


@pytest.fixture
def back_to_the_latest_schema():
    """The migration test leaves the schema at AFTER; later migrations come back after it."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_it_migrates_a_seeded_database_without_losing_a_row(back_to_the_latest_schema):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    executor.loader.build_graph()
    old_apps = executor.loader.project_state([BEFORE]).apps
    months = seed_old_schema(old_apps)
    tables = {table: columns(table) for table in PARTITIONED}
    orders = {"registry_auditseal": "seq", "registry_lookup": "id"}
    before = {t: fingerprint(t, cols, orders.get(t, "id")) for t, cols in tables.items()}
    sequences = {
        t: scalar(f"SELECT last_value FROM {t}_id_seq")  # noqa: S608
        for t in ("registry_auditevent", "registry_lookuplogentry")
    }
    assert scalar("SELECT relkind FROM pg_class WHERE relname = 'registry_lookup'") == "r"

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])

    # Every row, every column (the seals gained event_created_at).
    after = {t: fingerprint(t, cols, orders.get(t, "id")) for t, cols in tables.items()}
    assert after == before
    assert before["registry_lookuplogentry"][0] == 36 and before["registry_auditseal"][0] == 18
    for table in PARTITIONED:
        assert scalar("SELECT relkind FROM pg_class WHERE relname = %s", [table]) == "p"
        assert scalar(f"SELECT count(*) FROM {table}_default") == 0  # noqa: S608
        assert set(months) <= set(partitions_existing(table))
        assert add_months(this_month(), 3) in partitions_existing(table)
    # Each seal sits with its event's month.
    for seal in AuditSeal.objects.all():
        event = AuditEvent.objects.get(pk=seal.event_id)
        assert seal.event_created_at == event.created_at
        assert table_of(AuditSeal, seal.seq) == partition_name(
            "registry_auditseal", month_of(event.created_at)
        )
    # The chain and its checkpoint verify; the sequences continue.
    result = audit_verify()
    assert result.ok and result.checked == 18 and result.checkpoints == 1, result.problem
    for table, last in sequences.items():
        assert scalar(f"SELECT last_value FROM {table}_id_seq") == last  # noqa: S608

    # New rows go to this month's partitions, and seal and verify as before.
    member = Member.objects.get(code="MIGRATED")
    lookup = Lookup.objects.create(
        member=member,
        purpose="loan_application",
        identifier_count=1,
        match_count=0,
        created_at=timezone.now(),
    )
    entry = LookupLogEntry.objects.create(
        lookup=lookup, member=member, kind="phone", digest=b"x" * 32, created_at=lookup.created_at
    )
    event = audit_record(actor=Actor.system(), action="test.after_migration")
    assert event.pk > sequences["registry_auditevent"]
    assert entry.pk > sequences["registry_lookuplogentry"]
    assert audit_seal() == 1
    suffix = f"_p{this_month():%Y%m}"
    assert table_of(Lookup, lookup.pk) == "registry_lookup" + suffix
    assert table_of(LookupLogEntry, entry.pk) == LOG + suffix
    assert table_of(AuditEvent, event.pk) == "registry_auditevent" + suffix
    assert table_of(AuditSeal, 19) == "registry_auditseal" + suffix
    assert list(lookup.entries.all()) == [entry]
    assert audit_verify().ok and audit_verify().checked == 19


# --- Maintenance ------------------------------------------------------------------------------


def lookup_at(member, moment, identifiers=2):
    lookup = Lookup.objects.create(
        member=member,
        purpose="loan_application",
        identifier_count=identifiers,
        match_count=0,
        created_at=moment,
    )
    LookupLogEntry.objects.bulk_create(
        LookupLogEntry(
            lookup=lookup,
            member=member,
            kind="phone",
            digest=n.to_bytes(4, "big") * 8,
            created_at=moment,
        )
        for n in range(identifiers)
    )
    return lookup


def month_rows(table, month):
    return scalar(
        f"SELECT count(*) FROM {table} WHERE created_at >= %s AND created_at < %s",  # noqa: S608
        [at(month, day=1, hour=0), at(add_months(month, 1), day=1, hour=0)],
    )


@override_settings(REGISTRY_LOOKUP_LOG_RETENTION_MONTHS=24)
def test_it_drops_whole_months_past_retention_by_ddl_and_keeps_every_other_month(world):
    member = world.alice.member
    current = this_month()
    keep_from = add_months(current, -24)
    old = [add_months(keep_from, -2), add_months(keep_from, -1)]
    kept = [keep_from, add_months(current, -1), current]
    for month in old + kept:
        for table in PARTITIONED:
            partition_create(actor=Actor.system(), table=table, month=month)
        lookup_at(member, at(month), identifiers=3)
        AuditEvent.objects.create(created_at=at(month), actor_type="system", action="test.old")

    with CaptureQueriesContext(connection) as queries:
        summary = job_execute("partition_maintenance")

    # (Partitions are schema: earlier tests' months are still there, and go too.)
    assert {partition_name(t, m) for t in ("registry_lookup", LOG) for m in old} <= set(
        summary["dropped"]
    )
    assert all(name[-6:] < f"{keep_from:%Y%m}" for name in summary["dropped"])
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any(s.lstrip().upper().startswith("DELETE") for s in statements)
    assert sum("registry_partition_drop" in s for s in statements) == len(summary["dropped"])
    for month in old:
        assert month_rows("registry_lookup", month) == 0 and month_rows(LOG, month) == 0
        # The audit trail of that month is untouched: only its owner drops it, after an archive.
        assert month_rows("registry_auditevent", month) == 1
        assert month in partitions_existing("registry_auditevent")
    for month in kept:
        assert month_rows("registry_lookup", month) == 1 and month_rows(LOG, month) == 3
    deleted = "SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables WHERE relname LIKE %s"
    assert scalar(deleted, [f"{LOG}%"]) == 0
    dropped = AuditEvent.objects.filter(action="partition.dropped")
    assert sorted(e.object_id for e in dropped) == sorted(summary["dropped"])

    # Idempotent: nothing left to do, nothing recorded.
    events = AuditEvent.objects.count()
    again = job_execute("partition_maintenance")
    assert again["created"] == [] and again["dropped"] == [] and again["moved_from_default"] == 0
    assert AuditEvent.objects.count() == events
    assert again["months_ahead"] == 3


@override_settings(REGISTRY_LOOKUP_LOG_RETENTION_MONTHS=24)
def test_dropping_a_month_costs_the_same_statements_whatever_its_size(world):
    """The structural proof that retention does not grow with the log: a month of 2 rows and
    a month of 2,000 rows leave by the same statements (DDL), none a DELETE of rows."""
    member = world.alice.member
    job_execute("partition_maintenance")  # earlier tests' old months go first
    costs = []
    for back, rows in ((30, 2), (29, 2000)):
        month = add_months(this_month(), -back)
        for table in PARTITIONED:
            partition_create(actor=Actor.system(), table=table, month=month)
        lookup_at(member, at(month), identifiers=rows)
        with CaptureQueriesContext(connection) as queries:
            summary = job_execute("partition_maintenance")
        assert summary["dropped"] == [
            partition_name(LOG, month),
            partition_name("registry_lookup", month),
        ]
        # The statements with their values blanked out (times, ids, months).
        costs.append([re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"]) for q in queries.captured_queries])
    assert costs[0] == costs[1]
    assert not LookupLogEntry.objects.exists()


def test_the_partitioned_history_holds_no_foreign_key_that_would_lock_members():
    """A partition that carries a foreign key locks the referenced table (members, keys: read
    by every API request) ACCESS EXCLUSIVE when it is created, detached or dropped: under load
    the monthly drop deadlocked API requests. The partitioned tables reference nothing."""
    foreign_keys = scalar(
        """SELECT count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
           WHERE k.contype = 'f' AND (c.relname = ANY(%s) OR c.relname LIKE ANY(%s))""",
        [list(PARTITIONED), [f"{table}_p%" for table in PARTITIONED]],
    )
    assert foreign_keys == 0


@override_settings(REGISTRY_LOOKUP_LOG_RETENTION_MONTHS=24)
def test_the_drop_waits_its_turn_without_stalling_requests_behind_it(world):
    """A long reader of the log (a report, subject access) holds its parent: the drop gives
    up its lock request after 200 ms and retries, so the API requests that arrive meanwhile
    do not queue behind it; once the reader is done, the month goes."""
    import threading

    month = add_months(this_month(), -30)
    for table in PARTITIONED:
        partition_create(actor=Actor.system(), table=table, month=month)
    lookup_at(world.alice.member, at(month))
    settings = connection.settings_dict
    reader = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"]
    )
    reader.execute(f"LOCK TABLE {LOG} IN ACCESS SHARE MODE")
    result = {}

    def maintain():
        try:
            result.update(job_execute("partition_maintenance"))
        finally:
            connection.close()  # this thread's own connection

    job = threading.Thread(target=maintain)
    job.start()
    try:
        time.sleep(1.0)  # the job is retrying now
        other = psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            host=settings["HOST"],
            port=settings["PORT"],
            autocommit=True,
        )
        with other:
            # An API request's reads and a lookup's write of the log, while the drop waits.
            other.execute("SET lock_timeout = '500ms'")
            other.execute("SELECT count(*) FROM registry_member").fetchone()
            other.execute(f"SELECT count(*) FROM {LOG}").fetchone()  # noqa: S608
        assert job.is_alive()  # still waiting for the reader
    finally:
        reader.rollback()
        reader.close()
        job.join(60)
    assert partition_name(LOG, month) in result["dropped"]
    assert month_rows(LOG, month) == 0


def test_a_row_without_its_month_is_kept_in_the_default_partition_then_moved(world):
    """No write is lost for want of a partition: a row far ahead (or whose month the job has
    not created yet) lands in the DEFAULT partition, and the job moves it to its own month,
    audit rows included (they stay append-only)."""
    month = add_months(this_month(), 10)
    lookup = lookup_at(world.alice.member, at(month))
    event = AuditEvent.objects.create(created_at=at(month), actor_type="system", action="test.far")
    assert table_of(Lookup, lookup.pk) == "registry_lookup_default"
    assert table_of(AuditEvent, event.pk) == "registry_auditevent_default"

    summary = job_execute("partition_maintenance")

    assert summary["moved_from_default"] == 1 + 2 + 1
    assert table_of(Lookup, lookup.pk) == partition_name("registry_lookup", month)
    assert table_of(AuditEvent, event.pk) == partition_name("registry_auditevent", month)
    assert LookupLogEntry.objects.filter(lookup=lookup).count() == 2
    for table in PARTITIONED:
        assert scalar(f"SELECT count(*) FROM {table}_default") == 0  # noqa: S608
    with pytest.raises(Exception, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.edited")


def test_it_raises_the_alarm_when_less_than_a_month_is_ready(client, frozen_now):
    assert partitions_months_ahead() == 3
    body = client.get("/readyz").json()
    assert body["partition_months_ahead"] == 3 and body["partition_alarm"] is False

    frozen_now.advance(days=31 * 3)
    assert partitions_months_ahead() == 0
    body = client.get("/readyz").json()
    assert body["partition_alarm"] is True

    job_execute("partition_maintenance")
    assert partitions_months_ahead() == 3


# --- The runtime role ------------------------------------------------------------------------


def test_the_runtime_role_cannot_drop_or_change_an_audit_month(runtime_connection):  # noqa: F811
    conn = runtime_connection
    month = this_month()
    audit_record(actor=Actor.system(), action="test.event")
    audit_seal()
    ahead = add_months(month, 5)
    # It may create a month (of any of the four tables) through the function ...
    conn.execute("SELECT registry_partition_create('registry_auditevent', %s)", [ahead])
    for table, column in (("registry_auditevent", "action"), ("registry_auditseal", "hash")):
        parts = (partition_name(table, month), partition_name(table, ahead), f"{table}_default")
        for part in parts:
            for template in (
                f"UPDATE {part} SET {column} = 'x'",  # noqa: S608
                f"DELETE FROM {part}",  # noqa: S608
                f"TRUNCATE {part}",
            ):
                assert "permission denied" in refused(conn, template)
            for template in (
                f"DROP TABLE {part}",
                f"ALTER TABLE {part} DISABLE TRIGGER ALL",
                f"ALTER TABLE {table} DETACH PARTITION {part}",
            ):
                assert "must be owner" in refused(conn, template)
        # ... but the drop function refuses the audit trail outright, whatever the month.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not be dropped"):
            conn.execute("SELECT registry_partition_drop(%s, %s)", [table, add_months(month, -100)])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT registry_partition_protect('registry_auditevent', 'x')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not a partitioned"):
        conn.execute("SELECT registry_partition_create('registry_member', %s)", [month])
    # The new audit partition refuses TRUNCATE even from its owner (trigger), as the others.
    assert (
        scalar(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass",
            [partition_name("registry_auditevent", ahead)],
        )
        == 2
    )
    # It drops a month of the log only once the month is over.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is not over"):
        conn.execute("SELECT registry_partition_drop(%s, %s)", [LOG, month])
    past = add_months(month, -100)
    conn.execute("SELECT registry_partition_create(%s, %s)", [LOG, past])
    assert conn.execute("SELECT registry_partition_drop(%s, %s)", [LOG, past]).fetchone()[0]
    assert AuditEvent.objects.filter(action="test.event").count() == 1
    assert audit_verify().ok


# --- The owner's audit month drop --------------------------------------------------------------


def drop_command(month):
    out = io.StringIO()
    call_command("audit_drop_month", "--month", f"{month:%Y-%m}", stdout=out)
    return out.getvalue()


def test_it_drops_an_audit_month_only_with_a_matching_archive():
    month = add_months(this_month(), -80)
    for table in PARTITIONED:
        partition_create(actor=Actor.system(), table=table, month=month)
    old = [
        AuditEvent.objects.create(created_at=at(month, day=d), actor_type="system", action="t.old")
        for d in (1, 2, 3)
    ]
    audit_seal()
    audit_record(actor=Actor.system(), action="test.now")
    audit_seal()

    with pytest.raises(CommandError, match="no verified archive"):
        drop_command(month)
    with pytest.raises(CommandError, match="within the audit retention"):
        drop_command(add_months(this_month(), -2))
    seals = AuditSeal.objects.filter(event_id__in=[e.pk for e in old]).order_by("seq")
    AuditArchive.objects.create(
        month=month,
        file_sha256="0" * 64,
        first_seq=seals[0].seq,
        last_seq=seals[2].seq,
        events=2,  # wrong: the archive does not describe what the database holds
        archived_at=timezone.now(),
    )
    with pytest.raises(CommandError, match="does not describe"):
        drop_command(month)
    assert AuditEvent.objects.filter(action="t.old").count() == 3

    with connection.cursor() as cursor:  # corrected (append-only: only by a superuser)
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE registry_auditarchive SET events = 3")
        cursor.execute("SET session_replication_role = DEFAULT")
    assert "3 events" in drop_command(month)

    assert not AuditEvent.objects.filter(action="t.old").exists()
    assert not AuditSeal.objects.filter(event_id__in=[e.pk for e in old]).exists()
    assert month not in partitions_existing("registry_auditevent")
    assert month not in partitions_existing("registry_auditseal")
    assert AuditEvent.objects.filter(action="test.now").count() == 1
    dropped = AuditEvent.objects.get(action="audit.month_dropped")
    assert dropped.details["events"] == 3 and dropped.details["month"] == f"{month:%Y-%m}"


def test_the_drop_function_refuses_the_audit_trail_for_every_caller():
    """Even called as the superuser the tests connect as: the function, not the caller's
    privileges, decides which tables it drops."""
    with pytest.raises(Exception, match="may not be dropped"):
        partition_drop(
            actor=Actor.system(), table="registry_auditevent", month=add_months(this_month(), -99)
        )

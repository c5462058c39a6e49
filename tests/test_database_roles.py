"""The two database roles of deploy/postgres/roles.sql: the runtime role the application
connects as may INSERT and SELECT the audit tables and nothing more; it owns nothing, so it
cannot alter them or switch their triggers off either."""

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from registry.actors import Actor
from registry.models import AuditEvent
from registry.services.audit import (
    audit_checkpoint,
    audit_record,
    audit_seal,
    audit_verification_run,
)
from tests.support import ROOT

ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"
# Each audit table and a column of it.
AUDIT_TABLES = {
    "registry_auditevent": "action",
    "registry_auditseal": "hash",
    "registry_auditcheckpoint": "hash",
    "registry_auditverification": "hash",
}
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runtime_connection():
    """The test database provisioned by roles.sql itself (run as the superuser), and a
    connection to it as the runtime role, registry_app."""
    with connection.cursor() as cursor:
        cursor.execute(ROLES_SQL.read_text(encoding="utf-8"))
    settings = connection.settings_dict
    conn = psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        dbname=settings["NAME"],
        user="registry_app",
        autocommit=True,
    )
    yield conn
    conn.close()


def statement(template: str, table: str, column: str = "") -> sql.Composed:
    return sql.SQL(template).format(table=sql.Identifier(table), column=sql.Identifier(column))


def refused(conn, query) -> str:
    """Run `query` as the runtime role; return PostgreSQL's refusal (the test fails if none)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(query)
    return str(caught.value)


def audited_history():
    audit_record(actor=Actor.system(), action="test.event", details={"n": 1})
    audit_seal()
    assert audit_checkpoint(force=True) is not None
    assert audit_verification_run(actor=Actor.system()).ok  # an AuditVerification row


def audit_partitions() -> dict[str, str]:
    """Each monthly (and DEFAULT) partition of the partitioned audit tables, and a column."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname IN ('registry_auditevent', 'registry_auditseal')"
        )
        return {part: AUDIT_TABLES[parent] for part, parent in cursor.fetchall()}


def test_it_lets_the_runtime_role_only_insert_and_read_the_audit_tables(runtime_connection):
    audited_history()
    conn = runtime_connection
    assert conn.execute("SELECT current_user").fetchone()[0] == "registry_app"
    partitions = audit_partitions()
    assert len(partitions) >= 2 * 5  # this month, three ahead and DEFAULT, of each table
    for table, column in {**AUDIT_TABLES, **partitions}.items():
        count = conn.execute(statement("SELECT count(*) FROM {table}", table)).fetchone()[0]
        assert count >= 1 or table in partitions
        # Refused by the privileges themselves, before any trigger could run.
        for template in (
            "UPDATE {table} SET {column} = 'x'",
            "DELETE FROM {table}",
            "TRUNCATE {table}",
        ):
            assert "permission denied" in refused(conn, statement(template, table, column))
        for template in (
            "ALTER TABLE {table} DISABLE TRIGGER ALL",
            "ALTER TABLE {table} DISABLE TRIGGER {column}",
            "ALTER TABLE {table} ADD COLUMN x int",
            "DROP TABLE {table}",
        ):
            trigger = f"{table}_append_only"
            assert "must be owner" in refused(conn, statement(template, table, trigger))
    # Nor can it switch every trigger off for its session, as a superuser could.
    assert "permission denied" in refused(conn, "SET session_replication_role = replica")
    assert AuditEvent.objects.filter(action="test.event").count() == 1


def test_it_lets_the_runtime_role_run_the_registry(runtime_connection):
    """What the application does still works: insert audit events (and seals), change
    ordinary rows; and the runtime role owns nothing at all."""
    conn = runtime_connection
    conn.execute(
        "INSERT INTO registry_auditevent (created_at, actor_type, api_key_prefix, officer, "
        "action, object_type, object_id, details) "
        "VALUES (now(), 'system', '', '', 'test.runtime', '', '', '{}')"
    )
    conn.execute("UPDATE registry_category SET name = name")
    owned = conn.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = 'registry_app'::regrole"
    ).fetchone()[0]
    assert owned == 0
    role = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = 'registry_app'"
    ).fetchone()
    assert role == (False, False, False, False)
    assert AuditEvent.objects.filter(action="test.runtime").count() == 1
    assert audit_seal() >= 1  # the sealer's own inserts are plain INSERTs too

"""Raw SQL with server-side parameter binding, for the few set-based hot paths (lookups, batch
case submission) that pass thousands of values as arrays.

Django's psycopg backend binds parameters client-side: every value is quoted into the SQL
text, which for 10,000 binary digests costs more than running the statement. `execute_binary`
runs one statement on Django's own connection (so inside the caller's transaction) through a
plain psycopg cursor, where `%(name)b` placeholders travel as binary parameters (an array of
digests is a memory copy, not 10,000 escaped strings) and `%(name)s` ones as text.

With CONN_HEALTH_CHECKS, Django checks a persistent connection with a `SELECT 1` before the
first query of each request: one more round trip on every API call. The API-key read, the
first statement of every call, is read-only, so it stands in for that check
(`checks_health=True`): if it fails because the connection died (say PostgreSQL restarted),
it runs once more on a fresh connection, which is what the check achieves.

Every statement run here is prepared on its connection's first run of it (`prepare=True`;
settings.py lets psycopg do that): PostgreSQL then parses and plans the lookup's statement
once per connection, not on every call, where planning cost more than executing it.
Behind a PgBouncer transaction pool (DATABASE_POOL_MODE=transaction) nothing is prepared:
settings.py sets psycopg's prepare_threshold to None, which overrides `prepare=True`.

psycopg parses a statement's placeholders on every execution unless the statement is at most
4096 characters long (then it caches the parse): for the lookup's statement that parse cost
more CPU time than the rest of the call's database client work. `compact` squeezes the
layout out of a hot statement so it stays under that limit (tests/test_sql.py checks it).
"""

import re

import psycopg
from django.db import DatabaseError, connection


def compact(sql: str) -> str:
    """The statement with every run of whitespace made one space. Refuses `--` comments,
    which would swallow the rest of the statement once its line ends are gone."""
    if "--" in sql:
        raise ValueError("compact() cannot keep a statement with -- comments")
    return re.sub(r"\s+", " ", sql).strip()


def unnest_insert(table: str, column_types: dict[str, str], *, then: str = "") -> str:
    """An INSERT of many rows in one statement: one binary array parameter per column, named
    after the column (`%(column)b`), unnested into rows. `then`: ON CONFLICT / RETURNING."""
    # Table and column names are the code's own (from the models); values are parameters.
    arrays = ", ".join(f"%({column})b::{kind}[]" for column, kind in column_types.items())
    columns = ", ".join(column_types)
    sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) {then}"  # noqa: S608
    return compact(sql)


def unnest_params(rows, columns) -> dict[str, list]:
    """The parameters of an `unnest_insert`: each column's values, one list per column."""
    return {column: [getattr(row, column) for row in rows] for column in columns}


def execute_binary(
    sql: str, params: dict, *, fetch: bool = True, checks_health: bool = False
) -> list[tuple]:
    """Run one statement. `checks_health`: only for read-only statements, which may run twice."""
    if checks_health and _health_check_due():
        return _execute_as_health_check(sql, params, fetch)
    return _execute(sql, params, fetch)


def _execute(sql: str, params: dict, fetch: bool) -> list[tuple]:
    connection.ensure_connection()
    # Django's wrapper turns psycopg errors into django.db ones (OperationalError -> 503 in
    # the API, IntegrityError, ...), exactly as for ORM queries.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if fetch else []


def _health_check_due() -> bool:
    """Would Django's next query run its `SELECT 1` health check? (Never inside a
    transaction: a statement there must not be retried on another connection.)"""
    return (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )


def _execute_as_health_check(sql: str, params: dict, fetch: bool) -> list[tuple]:
    try:
        rows = _execute(sql, params, fetch)
    except DatabaseError:
        if connection.is_usable():  # the statement failed, not the connection
            raise
        connection.close()  # as Django's failed health check does; the retry reconnects
        rows = _execute(sql, params, fetch)
    connection.health_check_done = True
    return rows

"""Raw SQL with server-side parameter binding, for the few set-based hot paths (lookups, batch
case submission) that pass thousands of values as arrays.

Django's psycopg backend binds parameters client-side: every value is quoted into the SQL
text, which for 10,000 binary digests costs more than running the statement. `execute_binary`
runs one statement on Django's own connection (so inside the caller's transaction) through a
plain psycopg cursor, where `%(name)b` placeholders travel as binary parameters (an array of
digests is a memory copy, not 10,000 escaped strings) and `%(name)s` ones as text.
"""

import psycopg
from django.db import connection


def execute_binary(sql: str, params: dict, *, fetch: bool = True) -> list[tuple]:
    connection.ensure_connection()
    # Django's wrapper turns psycopg errors into django.db ones (OperationalError -> 503 in
    # the API, IntegrityError, ...), exactly as for ORM queries.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if fetch else []

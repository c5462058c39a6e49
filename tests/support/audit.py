"""The audit trail in tests: its events by action, and edits only a database superuser could
make (the append-only triggers bypassed)."""

from django.db import connection

from registry.models import AuditEvent


def events(action: str, **filters):
    return AuditEvent.objects.filter(action=action, **filters)


class tampering:
    """Bypass the append-only triggers the way a database superuser could."""

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")

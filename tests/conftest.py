import pytest
from django.core.cache import cache

from tests.base import make_world


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Rate-limit counters live in the shared cache; start every test from zero."""
    cache.clear()
    yield


@pytest.fixture
def world(db):
    return make_world()


class FrozenClock:
    """What django.utils.timezone.now() answers while `frozen_now` is active."""

    def __init__(self, start):
        self.current = start

    def __call__(self):
        return self.current

    def advance(self, **delta):
        """Move forward by timedelta(**delta), e.g. advance(days=21); returns the new now."""
        from datetime import timedelta

        self.current = self.current + timedelta(**delta)
        return self.current

    def set(self, moment):
        self.current = moment
        return self.current


@pytest.fixture
def frozen_now(monkeypatch):
    """Time travel without sleeping: time stands still at the real now until the test moves
    it with `frozen_now.advance(days=21)`. Registry code calls `timezone.now()` through the
    module (never `from django.utils.timezone import now`), so patching the module is enough;
    timezone.localdate() follows too. The database's own now() and time.time() (rate limits)
    are not moved."""
    from django.utils import timezone

    clock = FrozenClock(timezone.now())
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture(autouse=True, scope="session")
def _flushable_audit_trail():
    """Transactional tests (django_db(transaction=True)) end with a TRUNCATE of every table,
    which the audit trail's append-only triggers refuse. For that flush only, the test
    database's superuser switches ordinary triggers off (SET LOCAL: the flush's transaction).
    Mark such tests serialized_rollback=True when they need the migrations' reference data
    (categories, groups, beat schedule) back: the flush empties those tables too."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return original(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original

import pytest
from django.core.cache import cache

from tests.support.admin import make_auditor, verified_client
from tests.support.browser import browser_page, chinese_page, chromium  # noqa: F401  (fixtures)
from tests.support.world import make_world


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Rate-limit counters live in the shared cache; start every test from zero."""
    cache.clear()
    yield


@pytest.fixture
def world(db):
    return make_world()


@pytest.fixture
def officer(world):
    """The admin as the world's officer, signed in with the second factor verified."""
    return verified_client(world.officer.user)


@pytest.fixture
def auditor(db):
    """The admin as a read-only auditor, signed in with the second factor verified."""
    return verified_client(make_auditor())


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
    The flush empties the migrations' reference data too; `_reference_data` puts it back.
    (Do not use serialized_rollback: after another test's flush has re-created the content
    types, reloading the serialized copy collides with them.)"""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return original(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original


def _needs_database(request) -> bool:
    return request.node.get_closest_marker("django_db") is not None or any(
        name in request.fixturenames for name in ("db", "transactional_db", "live_server")
    )


@pytest.fixture(autouse=True)
def _reference_data(request):
    """The migrations' reference data (categories, officer groups, beat schedule) is emptied by
    every transactional test's flush; put it back before each database test."""
    if not _needs_database(request):
        yield
        return
    request.getfixturevalue(
        "transactional_db"
        if "transactional_db" in request.fixturenames or _is_transactional(request)
        else "db"
    )
    from django.contrib.auth.models import Group

    from registry.models import Category

    if Category.objects.count() < 7 or Group.objects.count() < 2:
        import importlib

        from django.apps import apps

        for module in (
            "0002_audit_triggers_groups_categories",
            "0003_beat_schedule",
            "0007_unit_quotas",
            "0009_dispute_quota_scrub",
            "0011_watches_alerts",
            "0015_partitioned_history",
            "0017_rings",
        ):
            migration = importlib.import_module(f"registry.migrations.{module}")
            seed = getattr(migration, "seed", None) or migration.seed_schedule
            seed(apps, None)
    yield


def _is_transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))

"""DATABASE_POOL_MODE: what the registry changes in its connections behind PgBouncer.

The proof against a real PgBouncer is tests/test_pgbouncer_replica.py (chaos); these check
the settings themselves, fast, in a fresh interpreter per environment."""

import json
import os
import subprocess
import sys

from tests.support.private_services import ROOT

SHOW = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({a: {'options': d['OPTIONS'], "
    "'no_cursors': d.get('DISABLE_SERVER_SIDE_CURSORS', False)} "
    "for a, d in s.DATABASES.items()}, default=str))"
)


def databases(**env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    environ.update(
        REGISTRY_ENV="test",
        DJANGO_SETTINGS_MODULE="consortium.settings",
        PYTHONPATH=str(ROOT),
        DATABASE_URL="postgres://registry_app@127.0.0.1:6432/registry",
        DATABASE_REPLICA_URL="postgres://registry_app@127.0.0.1:6432/registry_replica",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_sends_the_plan_option_and_prepares_when_no_pooler_is_named():
    result = databases()
    default = json.loads(result.stdout)["default"]
    assert "plan_cache_mode=force_generic_plan" in default["options"]["options"]
    assert default["options"]["prepare_threshold"] == 2**31 - 1
    assert default["no_cursors"] is False


def test_it_sends_no_startup_options_behind_a_session_pool():
    default = json.loads(databases(DATABASE_POOL_MODE="session").stdout)["default"]
    assert "options" not in default["options"]
    assert default["options"]["prepare_threshold"] == 2**31 - 1  # kept: one server each


def test_it_prepares_nothing_and_declares_no_cursor_behind_a_transaction_pool():
    dbs = json.loads(databases(DATABASE_POOL_MODE="transaction").stdout)
    for alias in ("default", "replica"):
        assert "options" not in dbs[alias]["options"]
        assert dbs[alias]["options"]["prepare_threshold"] is None
        assert dbs[alias]["no_cursors"] is True


def test_it_refuses_an_unknown_pool_mode_without_repeating_it():
    result = databases(DATABASE_POOL_MODE="statement-ish")
    assert result.returncode != 0
    assert "DATABASE_POOL_MODE must be empty, session or transaction" in result.stderr
    assert "statement-ish" not in result.stderr

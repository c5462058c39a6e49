"""Start the real server (gunicorn) against the test database, for tests that need separate
processes (shared rate limits, end-to-end client runs)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.db import connection

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created (its name is test_<...>)."""
    s = connection.settings_dict
    host = s["HOST"] or ""
    if host.startswith("/"):
        return f"postgres://{s['USER']}@/{s['NAME']}?host={host}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{host or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def server_env(**overrides: str) -> dict:
    env = dict(os.environ)
    env.update(
        REGISTRY_ENV="test",
        DATABASE_URL=test_database_url(),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "client")]),
        DJANGO_SETTINGS_MODULE="consortium.settings",
    )
    env.pop("REGISTRY_TEST_DB_NAME", None)
    env.update(overrides)
    return env


@contextlib.contextmanager
def gunicorn(*, workers: int = 2, timeout: float = 30.0, **env_overrides: str):
    """Yields the base URL of a gunicorn serving consortium.wsgi on a free loopback port."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "consortium.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=server_env(**env_overrides))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_serving(base: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"server at {base} did not answer within {timeout} s")

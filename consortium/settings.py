"""Settings for the consortium registry.

Everything comes from environment variables, all listed with a comment in deploy/.env.example.
Secrets come either from the variable itself or from a file named by `<NAME>_FILE`, so that
they can live in systemd credentials, Docker secrets or `var/secrets/` during development.

REGISTRY_ENV selects the defaults:
- production (the default): every secret must be configured, or startup fails;
- development: `make run` generates secrets under var/secrets and points the *_FILE vars there;
- test: fixed, public test secrets, so that a test run needs no set-up.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_secret(name: str, test_value: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (whitespace stripped)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    value = os.environ.get(name, "")
    if not value and REGISTRY_ENV == "test":
        return test_value
    return value


def database_from_url(url: str) -> dict:
    """postgres://user:password@host:port/name?sslmode=require&host=/socket/dir"""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL")
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "registry",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


def redis_url_with_password(url: str, password: str) -> str:
    """redis://host:port/db with `password` added, unless the URL already names one."""
    parts = urlsplit(url)
    if not password or parts.scheme not in ("redis", "rediss") or parts.password:
        return url
    user = quote(parts.username or "", safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


REGISTRY_ENV = env_str("REGISTRY_ENV", "production")
if REGISTRY_ENV not in ("production", "development", "test"):
    raise ImproperlyConfigured("REGISTRY_ENV must be production, development or test")
IS_PRODUCTION = REGISTRY_ENV == "production"

DEBUG = env_bool("DEBUG", REGISTRY_ENV == "development")
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", test_value="test-only-secret-key-" + "x" * 40)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- The registry's own secrets and rules -------------------------------------------------
# "registry" (the default) or "custodian": a custodian serves only the OPRF endpoints, health,
# the schema and an admin for its member keys, and evaluates with one key share.
REGISTRY_ROLE = env_str("REGISTRY_ROLE", "registry")
if REGISTRY_ROLE not in ("registry", "custodian"):
    raise ImproperlyConfigured("REGISTRY_ROLE must be registry or custodian")
# Which process this is: "web" (gunicorn, manage.py), "worker" or "beat". Celery's worker and
# beat set it themselves (consortium/celery.py). Only the web process evaluates the OPRF, so
# only it reads key material: a worker or beat never holds it, and its unit is not given it.
REGISTRY_PROCESS = env_str("REGISTRY_PROCESS", "web")
if REGISTRY_PROCESS not in ("web", "worker", "beat"):
    raise ImproperlyConfigured("REGISTRY_PROCESS must be web, worker or beat")
# The published key document written by `manage.py oprf_keygen` (public_keys.json, with the
# custodians' URLs filled in). Set it on the registry when custodians hold the key (the
# registry then holds no share and does not evaluate) and on every custodian.
REGISTRY_OPRF_KEYS_FILE = env_str("REGISTRY_OPRF_KEYS_FILE")
# A custodian's share file from the ceremony (JSON; a secret): the variable or *_FILE.
REGISTRY_OPRF_SHARE = env_secret("REGISTRY_OPRF_SHARE") if REGISTRY_PROCESS == "web" else ""
# Single-key registry (no custodians): OPRF seed (32 bytes, hex); the key is
# DeriveKeyPair(seed, REGISTRY_OPRF_KEY_INFO) in mode VOPRF.
REGISTRY_OPRF_SEED = (
    env_secret("REGISTRY_OPRF_SEED", test_value="11" * 32)
    if REGISTRY_PROCESS == "web" and REGISTRY_ROLE == "registry" and not REGISTRY_OPRF_KEYS_FILE
    else ""
)
REGISTRY_OPRF_KEY_INFO = env_str("REGISTRY_OPRF_KEY_INFO", "consortium-registry/oprf/v2")
# Pepper for digests at rest: HMAC-SHA256(pepper, token). Earlier peppers, oldest first, stay
# configured because a rotation layers the new pepper over the old digests (see tokens.py).
REGISTRY_PEPPER = env_secret("REGISTRY_PEPPER", test_value="22" * 32)
REGISTRY_PREVIOUS_PEPPERS = [
    p for p in env_secret("REGISTRY_PREVIOUS_PEPPERS").split(",") if p.strip()
]

# The audit trail's keys (see registry/services/audit.py). The sealing key (64 hex characters)
# keys the seals' HMAC, so that whoever can write to the database cannot recompute them; the
# signing seed (64 hex characters) is the Ed25519 key that signs the chain's checkpoints.
# Both live in configuration, never in the database.
REGISTRY_AUDIT_SEAL_KEY = env_secret("REGISTRY_AUDIT_SEAL_KEY", test_value="33" * 32)
REGISTRY_AUDIT_SIGNING_SEED = env_secret("REGISTRY_AUDIT_SIGNING_SEED", test_value="44" * 32)
# Seals 1..N were made with plain SHA-256 before keyed sealing (a trail that predates it).
REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL = env_int("REGISTRY_AUDIT_UNKEYED_SEALS_UNTIL", 0)
# Where the sealer writes each signed checkpoint as a JSON file (empty: database only).
REGISTRY_AUDIT_CHECKPOINT_DIR = env_str("REGISTRY_AUDIT_CHECKPOINT_DIR")
# Seconds between checkpoints (at most one hour: the sealer signs the head when older).
REGISTRY_AUDIT_CHECKPOINT_SECONDS = env_int("REGISTRY_AUDIT_CHECKPOINT_SECONDS", 3600)

REGISTRY_DISCLOSE_REPORTERS = env_bool("REGISTRY_DISCLOSE_REPORTERS", False)
REGISTRY_DISPUTE_DEADLINE_DAYS = env_int("REGISTRY_DISPUTE_DEADLINE_DAYS", 20)
REGISTRY_DISPUTE_REMINDER_DAYS = env_int("REGISTRY_DISPUTE_REMINDER_DAYS", 5)
# Disputes one member may file in any 24 hours (officers set more per member): each one takes
# a case out of lookups at once, so a burst is refused and shown to the officers.
REGISTRY_DISPUTE_QUOTA_PER_DAY = env_int("REGISTRY_DISPUTE_QUOTA_PER_DAY", 10)
# Days after which the free text of a closed case (reference, subject's statement) and of a
# decided dispute (statements, rationale) is blanked by the closed_text_scrub job.
REGISTRY_CLOSED_TEXT_SCRUB_DAYS = env_int("REGISTRY_CLOSED_TEXT_SCRUB_DAYS", 30)
# Monitoring (api.md "Monitoring"): other members looking a watched identifier up within 24
# hours that raise velocity.exceeded, unless officers set the member's own threshold.
REGISTRY_VELOCITY_ALERT_THRESHOLD = env_int("REGISTRY_VELOCITY_ALERT_THRESHOLD", 3)
# Days alerts are kept for the pull API (GET /api/v1/alerts) before a job deletes them.
REGISTRY_ALERT_RETENTION_DAYS = env_int("REGISTRY_ALERT_RETENTION_DAYS", 90)
# Webhook hosts exempt from the delivery guard (comma-separated host names or addresses):
# deliveries never go to loopback, private, link-local or metadata addresses, checked on the
# address actually connected to, except for these hosts, which may also use plain http
# (tests and `make run` with a local receiver). Empty in production.
REGISTRY_WEBHOOK_ALLOWED_HOSTS = env_list("REGISTRY_WEBHOOK_ALLOWED_HOSTS", "")
REGISTRY_DEFAULT_RETENTION_DAYS = env_int("REGISTRY_DEFAULT_RETENTION_DAYS", 1826)
# Days sightings (the velocity rollup) are kept: the longest velocity window. Only sightings:
# the lookup log follows REGISTRY_LOOKUP_LOG_RETENTION_MONTHS.
REGISTRY_VELOCITY_RETENTION_DAYS = env_int("REGISTRY_VELOCITY_RETENTION_DAYS", 90)
# Months lookups and the lookup log are kept (the law's query-record period, 5 years by
# default): the partition_maintenance job drops each month's partitions once the month is
# wholly this many months old (registry/services/partitions.py).
REGISTRY_LOOKUP_LOG_RETENTION_MONTHS = env_int("REGISTRY_LOOKUP_LOG_RETENTION_MONTHS", 60)
# Monthly partitions of lookups, the lookup log and the audit trail created ahead of time
# (at most 36); /readyz and the admin raise an alarm when less than one month is ready.
REGISTRY_PARTITION_MONTHS_AHEAD = env_int("REGISTRY_PARTITION_MONTHS_AHEAD", 3)
# Months the audit trail is kept before a month may be archived and dropped (manage.py
# audit_archive, then audit_drop_month as the owner); 5 years by default.
REGISTRY_AUDIT_RETENTION_MONTHS = env_int("REGISTRY_AUDIT_RETENTION_MONTHS", 60)
if REGISTRY_AUDIT_RETENTION_MONTHS < 1:
    raise ImproperlyConfigured("REGISTRY_AUDIT_RETENTION_MONTHS must be at least 1")
if not (1 <= REGISTRY_PARTITION_MONTHS_AHEAD <= 36):
    raise ImproperlyConfigured("REGISTRY_PARTITION_MONTHS_AHEAD must be between 1 and 36")
if REGISTRY_LOOKUP_LOG_RETENTION_MONTHS < 1:
    raise ImproperlyConfigured("REGISTRY_LOOKUP_LOG_RETENTION_MONTHS must be at least 1")
REGISTRY_IDEMPOTENCY_TTL_HOURS = env_int("REGISTRY_IDEMPOTENCY_TTL_HOURS", 48)
REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS = env_int("REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS", 300)
REGISTRY_JOB_BATCH_SIZE = env_int("REGISTRY_JOB_BATCH_SIZE", 5000)
# After each committed batch a job rests this many times the batch's own duration, so that a
# long erasure leaves the API most of the machine (0: no rest).
REGISTRY_JOB_REST_FACTOR = env_float("REGISTRY_JOB_REST_FACTOR", 1.0)
# Finished JobRun rows are deleted after this many days (the hourly housekeeping job).
REGISTRY_JOB_RUN_RETENTION_DAYS = env_int("REGISTRY_JOB_RUN_RETENTION_DAYS", 30)
# Test only (ignored in production): seconds each job batch holds its transaction open, so
# that a test can kill a worker in the middle of a batch.
REGISTRY_JOB_BATCH_PAUSE_SECONDS = (
    0.0 if IS_PRODUCTION else float(env_str("REGISTRY_JOB_BATCH_PAUSE_SECONDS", "0") or 0)
)
REGISTRY_OFFICER_EMAILS = env_list("REGISTRY_OFFICER_EMAILS")
# Days an officer's (compliance) API key lives after it is issued; members' keys do not expire.
REGISTRY_COMPLIANCE_KEY_DAYS = env_int("REGISTRY_COMPLIANCE_KEY_DAYS", 90)
# Default per-minute rate limits and per-day quotas per scope, in units of work (an evaluated
# element, a looked-up identifier, any other call); officers override per member. The minute
# rate must admit a full batch (1000 elements or identifiers).
REGISTRY_DEFAULT_RATE_PER_MINUTE = env_int("REGISTRY_DEFAULT_RATE_PER_MINUTE", 6000)
REGISTRY_DEFAULT_QUOTA_PER_DAY = env_int("REGISTRY_DEFAULT_QUOTA_PER_DAY", 200_000)
# Usage signals (selectors/usage.py): a member's day alerts the officers when a signal reaches
# this many times the member's own 30-day median, once it has this many days of history.
REGISTRY_SIGNAL_FACTOR = env_int("REGISTRY_SIGNAL_FACTOR", 5)
REGISTRY_SIGNAL_MIN_HISTORY_DAYS = env_int("REGISTRY_SIGNAL_MIN_HISTORY_DAYS", 7)
# Member quality (selectors/quality.py): a member is flagged for review when, over the last 90
# days or 12 months, the share of its cases it withdrew, the share of decided disputes about
# its cases that were upheld, or its median days to respond to a dispute is above these, or it
# let more disputes than this pass their deadline without a response. Shares are judged only
# from REGISTRY_QUALITY_MIN_CASES cases and REGISTRY_QUALITY_MIN_DISPUTES decided disputes.
REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE = env_float("REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE", 0.2)
REGISTRY_QUALITY_MAX_UPHELD_SHARE = env_float("REGISTRY_QUALITY_MAX_UPHELD_SHARE", 0.5)
REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS = env_float(
    "REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS", 10.0
)
REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES = env_int("REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES", 2)
REGISTRY_QUALITY_MIN_CASES = env_int("REGISTRY_QUALITY_MIN_CASES", 10)
REGISTRY_QUALITY_MIN_DISPUTES = env_int("REGISTRY_QUALITY_MIN_DISPUTES", 3)

# Request bodies above this are refused before parsing (413).
REGISTRY_MAX_BODY_BYTES = env_int("REGISTRY_MAX_BODY_BYTES", 2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REGISTRY_MAX_BODY_BYTES

# --- Django --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "registry",
    # After "registry" so that registry/templates/admin/ overrides the admin's templates.
    "registry.apps.RegistryAdminConfig",
]

MIDDLEWARE = [
    "registry.middleware.RequestIdMiddleware",
    "registry.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "registry.middleware.ContentSecurityPolicyMiddleware",
    # Browser*: Django's own, skipped for /api/ (bearer keys, no session): registry/middleware.py.
    "registry.middleware.BrowserSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "registry.middleware.BrowserAuthenticationMiddleware",
    "registry.middleware.BrowserOTPMiddleware",
    "registry.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "consortium.custodian_urls" if REGISTRY_ROLE == "custodian" else "consortium.urls"
WSGI_APPLICATION = "consortium.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Two database roles (deploy/postgres/roles.sql): the application connects as the runtime
# role (DATABASE_URL), which owns nothing and may only INSERT and SELECT the audit tables;
# `manage.py migrate` runs with DATABASE_OWNER_URL (and DATABASE_OWNER_PASSWORD) set, in its
# own environment only, and then connects as the owner of the schema instead.
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/registry")
DATABASE_OWNER_URL = env_str("DATABASE_OWNER_URL")
DATABASES = {"default": database_from_url(DATABASE_OWNER_URL or DATABASE_URL)}
# Persistent connections: a new connection per request costs several times a lookup.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
)
# psycopg prepares a statement server-side only when the code asks (registry/sql.py: the
# API-key, lookup and case-insert statements, parsed and planned once per connection instead
# of on every call). Django's default, None, would turn that off too; the ORM's own statements
# carry their values inline, so letting psycopg prepare them after a few runs would only churn
# its cache: hence a threshold that no statement reaches on its own.
DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
# ... and PostgreSQL runs those prepared statements with their generic plan. Left to choose, it
# re-plans the lookup's statement for every call (its estimate for a plan that does not know
# the arrays' lengths is worse), which doubled its CPU time. Their plans are index probes
# whatever the number of identifiers (see registry/selectors/lookups.py); nothing else is
# prepared.
# Behind PgBouncer (DATABASE_POOL_MODE = its pool_mode), the `options` startup parameter is
# not sent: PgBouncer before 1.20 refuses any connection that carries it. Set the plan mode on
# the role instead (ALTER ROLE ... SET plan_cache_mode = force_generic_plan; docs/operations.md).
DATABASE_POOL_MODE = env_str("DATABASE_POOL_MODE")
if DATABASE_POOL_MODE not in ("", "session", "transaction"):
    raise ImproperlyConfigured("DATABASE_POOL_MODE must be empty, session or transaction")
if not DATABASE_POOL_MODE:
    DATABASES["default"]["OPTIONS"]["options"] = " ".join(
        filter(
            None,
            [
                DATABASES["default"]["OPTIONS"].get("options"),
                "-c plan_cache_mode=force_generic_plan",
            ],
        )
    )


def pooled_for_transactions(database: dict) -> None:
    """Transaction pooling hands each transaction to any server connection: a statement
    prepared, or a cursor declared, on one is missing on the next. PgBouncer 1.18 (Debian 12)
    does not carry prepared statements across; so none are made (psycopg's threshold None
    turns off even the `prepare=True` of registry/sql.py), and no server-side cursors."""
    database["OPTIONS"]["prepare_threshold"] = None
    database["DISABLE_SERVER_SIDE_CURSORS"] = True


if DATABASE_POOL_MODE == "transaction":
    pooled_for_transactions(DATABASES["default"])
if env_str("REGISTRY_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("REGISTRY_TEST_DB_NAME")}
# The database password may come from a file (systemd credential, Docker secret) instead of
# the URL, so that the environment file holds no secret.
_db_password = (
    env_secret("DATABASE_OWNER_PASSWORD") if DATABASE_OWNER_URL else env_secret("DATABASE_PASSWORD")
)
if _db_password:
    DATABASES["default"]["PASSWORD"] = _db_password
# A read replica for lookups (see registry/db_router.py), only when configured.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = {
        **database_from_url(DATABASE_REPLICA_URL),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"MIRROR": "default"},
    }
    DATABASES["replica"]["OPTIONS"].setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
    )
    if _replica_password := env_secret("DATABASE_REPLICA_PASSWORD"):
        DATABASES["replica"]["PASSWORD"] = _replica_password
    if DATABASE_POOL_MODE == "transaction":
        pooled_for_transactions(DATABASES["replica"])
    DATABASE_ROUTERS = ["registry.db_router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The Redis password comes from REDIS_PASSWORD(_FILE), never from the URLs in the environment
# file; it is added here to REDIS_URL and to a redis:// broker URL that has none.
REDIS_PASSWORD = env_secret("REDIS_PASSWORD")
REDIS_URL = redis_url_with_password(env_str("REDIS_URL"), REDIS_PASSWORD)
CACHES = {
    "default": (
        {
            # Django's Redis backend, reusing its redis.Redis objects (see registry/cache.py).
            "BACKEND": "registry.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "registry"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60  # hours
# Failures count per (username, address) pair: a stranger guessing an officer's password
# from elsewhere locks out only themself, never the officer at their own desk. The address
# is the one the TLS proxy saw (registry.middleware.client_address), not the proxy's own.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "registry.middleware.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registry/admin/locked_out.html"  # 429, in the officer's language
OTP_TOTP_ISSUER = "Consortium fraud registry"  # the name authenticator apps show
# Proxies in front of the web processes (nginx): only from these is X-Forwarded-For believed,
# and then only its last address (the one nginx appended itself).
REGISTRY_TRUSTED_PROXIES = env_list("REGISTRY_TRUSTED_PROXIES", "127.0.0.1,::1")

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", IS_PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = IS_PRODUCTION
SECURE_HSTS_PRELOAD = IS_PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "registry" / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
# STARTTLS by default in production: dispute notices name cases and members.
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", IS_PRODUCTION)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "registry@localhost")

# --- REST framework ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["registry.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["registry.api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["registry.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "registry.api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Consortium fraud registry API",
    "DESCRIPTION": "Confirmed fraud cases shared between member lenders, keyed by OPRF tokens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearer": []}],
    # Swagger UI served from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets shared by several fields, or named alike: one component name each.
    "ENUM_NAME_OVERRIDES": {
        "PurposeEnum": "registry.models.Purpose",
        "WatchPurposeEnum": "registry.models.WatchPurpose",
        "AlertTypeEnum": "registry.models.AlertType",
    },
}

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = redis_url_with_password(
    env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://"), REDIS_PASSWORD
)
# The longest a task may run: soft limit (the task gets SoftTimeLimitExceeded; jobs roll back
# their batch in flight and the next run resumes) 30 s before the hard one (the worker kills the
# child process; prefork pool only, as deployed). Bounded so that the two waits below, which must
# exceed it, are known.
REGISTRY_TASK_TIME_LIMIT_SECONDS = env_int("REGISTRY_TASK_TIME_LIMIT_SECONDS", 600)
CELERY_TASK_TIME_LIMIT = REGISTRY_TASK_TIME_LIMIT_SECONDS
CELERY_TASK_SOFT_TIME_LIMIT = max(1, REGISTRY_TASK_TIME_LIMIT_SECONDS - 30)
# Redis gives a dead worker's task to another worker after this (must exceed the time limit,
# or a task still running would be handed out again and run twice at once).
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", REGISTRY_TASK_TIME_LIMIT_SECONDS + 300
)
# The outbox sweep publishes again a task published and not done after this: the broker lost it.
REGISTRY_OUTBOX_REPUBLISH_SECONDS = env_int(
    "REGISTRY_OUTBOX_REPUBLISH_SECONDS", CELERY_VISIBILITY_TIMEOUT + 60
)
if not (
    REGISTRY_TASK_TIME_LIMIT_SECONDS
    < CELERY_VISIBILITY_TIMEOUT
    <= REGISTRY_OUTBOX_REPUBLISH_SECONDS - 30
):
    raise ImproperlyConfigured(
        "need REGISTRY_TASK_TIME_LIMIT_SECONDS < CELERY_VISIBILITY_TIMEOUT and "
        "CELERY_VISIBILITY_TIMEOUT + 30 <= REGISTRY_OUTBOX_REPUBLISH_SECONDS"
    )
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BASE_DIR / "var" / "broker"),
        "data_folder_out": str(BASE_DIR / "var" / "broker"),
        "processed_folder": str(BASE_DIR / "var" / "broker-done"),
        # kombu keeps its exchange tables in "control" relative to the working directory
        # unless told otherwise, which once left a control/ folder in the checkout.
        "control_folder": str(BASE_DIR / "var" / "broker-control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    # max_retries 0: a publisher whose broker connection is down fails at once (kombu would
    # otherwise retry connecting for broker_connection_timeout); the outbox keeps the task.
    # Workers reconnect on their own terms (broker_connection_retry), unaffected.
    # visibility_timeout: a task taken by a worker that died (SIGKILL, OOM, machine lost) is
    # unacknowledged (acks_late) and Redis hands it to another worker this long after it was
    # taken; every worker looks for such tasks every unacked_restore_interval seconds
    # (throttle 1: each look is a real scan; kombu's default scans every 100 s).
    else {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "max_retries": 0,
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
)
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The web process never waits on the broker: one attempt, then the outbox sweeper retries.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "registry")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Logging: one JSON object per line --------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "registry.logging.JsonFormatter"}},
    "filters": {"request_id": {"()": "registry.logging.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # The monthly report's PDF: WeasyPrint logs each rendering step at INFO.
        "weasyprint": {"level": "WARNING"},
    },
}

if IS_PRODUCTION:
    # A custodian holds one key share and nothing else: no pepper, no seed. Only the web
    # process is given key material at all.
    _required = [("DJANGO_SECRET_KEY", SECRET_KEY)]
    if REGISTRY_ROLE == "custodian":
        _required.append(("REGISTRY_OPRF_SHARE", REGISTRY_OPRF_SHARE))
    else:
        _required.append(("REGISTRY_PEPPER", REGISTRY_PEPPER))
        if not REGISTRY_OPRF_KEYS_FILE:
            _required.append(("REGISTRY_OPRF_SEED", REGISTRY_OPRF_SEED))
    _missing = [
        name
        for name, value in _required
        if not value and not (name.startswith("REGISTRY_OPRF") and REGISTRY_PROCESS != "web")
    ]
    if _missing:
        raise ImproperlyConfigured(
            "Production configuration without secrets: set "
            + ", ".join(f"{n} (or {n}_FILE)" for n in _missing)
        )

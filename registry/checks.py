"""System checks that fail fast on bad configuration (run by every manage.py command and at
server start)."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
GENERATE_HINT = "Generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"


@register(Tags.security, deploy=False)
def check_oprf_custody(app_configs, **kwargs):
    """The key this process evaluates with, and the document it publishes, must load. Only a
    web process holds key material: a worker or beat is given none."""
    from django.core.exceptions import ImproperlyConfigured

    from registry.services.oprf import key_set, local_key

    if settings.REGISTRY_PROCESS != "web":
        return []
    single_key = settings.REGISTRY_ROLE == "registry" and not settings.REGISTRY_OPRF_KEYS_FILE
    if single_key and not HEX64.match(settings.REGISTRY_OPRF_SEED or ""):
        return [
            Error(
                "REGISTRY_OPRF_SEED must be 32 bytes written as 64 hex characters.",
                hint="Generate one with: python -c 'import secrets; print(secrets.token_hex(32))'",
                id="registry.E001",
            )
        ]
    if settings.REGISTRY_ROLE == "custodian" and not settings.REGISTRY_OPRF_KEYS_FILE:
        return [Error("A custodian needs REGISTRY_OPRF_KEYS_FILE.", id="registry.E010")]
    try:
        local_key.cache_clear()
        key_set.cache_clear()
        key, document = local_key(), key_set()
    except (ImproperlyConfigured, OSError, ValueError, KeyError) as exc:
        return [Error(f"OPRF key configuration: {exc}", id="registry.E011")]
    if key is not None and key.key_id != document.key_id:
        return [Error("The OPRF share is not of the published key.", id="registry.E012")]
    return []


@register(Tags.security, deploy=False)
def check_registry_secrets(app_configs, **kwargs):
    if settings.REGISTRY_ROLE == "custodian":
        return []  # a custodian holds no pepper: it stores no identifiers
    errors = []
    peppers = [*settings.REGISTRY_PREVIOUS_PEPPERS, settings.REGISTRY_PEPPER]
    if any(len(p.strip()) < 32 for p in peppers):
        errors.append(
            Error(
                "REGISTRY_PEPPER (and each of REGISTRY_PREVIOUS_PEPPERS) must be at least 32 "
                "characters (64 hex characters recommended).",
                id="registry.E002",
            )
        )
    if len(set(peppers)) != len(peppers):
        errors.append(Error("A pepper appears twice in the rotation chain.", id="registry.E003"))
    for name, error_id in (
        ("REGISTRY_AUDIT_SEAL_KEY", "registry.E004"),
        ("REGISTRY_AUDIT_SIGNING_SEED", "registry.E005"),
    ):
        if not HEX64.match(getattr(settings, name) or ""):
            errors.append(
                Error(
                    f"{name} (or {name}_FILE) must be 32 bytes written as 64 hex characters: "
                    "the audit trail cannot be sealed or checkpointed without it.",
                    hint=GENERATE_HINT,
                    id=error_id,
                )
            )
    if settings.REGISTRY_AUDIT_SEAL_KEY and (
        settings.REGISTRY_AUDIT_SEAL_KEY == settings.REGISTRY_AUDIT_SIGNING_SEED
    ):
        errors.append(
            Error(
                "REGISTRY_AUDIT_SEAL_KEY and REGISTRY_AUDIT_SIGNING_SEED must differ.",
                id="registry.E006",
            )
        )
    if not 60 <= settings.REGISTRY_AUDIT_CHECKPOINT_SECONDS <= 3600:
        errors.append(
            Error(
                "REGISTRY_AUDIT_CHECKPOINT_SECONDS must be 60..3600 (at least hourly).",
                id="registry.E007",
            )
        )
    return errors


@register(Tags.compatibility)
def check_registry_rules(app_configs, **kwargs):
    errors = []
    if not 1 <= settings.REGISTRY_DISPUTE_DEADLINE_DAYS <= 20:
        errors.append(
            Error(
                "REGISTRY_DISPUTE_DEADLINE_DAYS must be between 1 and 20 (disputes are decided "
                "within 20 days).",
                id="registry.E015",
            )
        )
    if not 1 <= settings.REGISTRY_DEFAULT_RETENTION_DAYS <= 1827:
        errors.append(
            Error(
                "REGISTRY_DEFAULT_RETENTION_DAYS must be 1..1827 (five years).", id="registry.E016"
            )
        )
    if not 1 <= settings.REGISTRY_COMPLIANCE_KEY_DAYS <= 366:
        errors.append(Error("REGISTRY_COMPLIANCE_KEY_DAYS must be 1..366.", id="registry.E013"))
    if not 0 <= settings.REGISTRY_JOB_REST_FACTOR <= 10:
        errors.append(Error("REGISTRY_JOB_REST_FACTOR must be 0..10.", id="registry.E018"))
    if settings.REGISTRY_VELOCITY_RETENTION_DAYS < 90:
        errors.append(
            Error(
                "REGISTRY_VELOCITY_RETENTION_DAYS must cover the 90-day window.", id="registry.E017"
            )
        )
    return errors + check_quality_thresholds()


def check_quality_thresholds() -> list[Error]:
    """The member-quality thresholds (selectors/quality.py) must be able to flag somebody and
    not everybody: shares within 0..1, days and counts not negative, minimums at least 1."""
    errors = []
    for name in ("REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE", "REGISTRY_QUALITY_MAX_UPHELD_SHARE"):
        value = getattr(settings, name)
        if not 0 <= value <= 1:  # False for NaN too
            errors.append(
                Error(f"{name} is a share: 0..1 (0.2 is 20%), got {value}.", id="registry.E020")
            )
    days = settings.REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS
    if not 0 <= days <= 366:
        errors.append(
            Error(
                f"REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS must be 0..366 days, got {days}.",
                id="registry.E021",
            )
        )
    if settings.REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES < 0:
        errors.append(
            Error("REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES must be 0 or more.", id="registry.E022")
        )
    for name in ("REGISTRY_QUALITY_MIN_CASES", "REGISTRY_QUALITY_MIN_DISPUTES"):
        if getattr(settings, name) < 1:
            errors.append(Error(f"{name} must be at least 1.", id="registry.E023"))
    return errors


@register(Tags.security, deploy=True)
def check_production_parts(app_configs, **kwargs):
    warnings = []
    if not settings.REDIS_URL:
        warnings.append(
            CheckWarning(
                "REDIS_URL is not set: rate limits are counted per process, not shared.",
                id="registry.W001",
            )
        )
    if any(
        url.startswith(("redis://", "rediss://")) and not urlsplit(url).password
        for url in (settings.REDIS_URL, settings.CELERY_BROKER_URL)
    ):
        warnings.append(
            CheckWarning(
                "Redis is used without a password: whoever reaches it can read and forge "
                "queued tasks and rate-limit counters.",
                hint="Set requirepass in Redis and REDIS_PASSWORD_FILE here.",
                id="registry.W003",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        warnings.append(
            CheckWarning(
                "The filesystem broker is for one machine in development; use Redis or RabbitMQ.",
                id="registry.W002",
            )
        )
    return warnings


@register(Tags.database)
def check_stored_pepper_versions(app_configs, databases=None, **kwargs):
    """Every stored digest must sit at a pepper version the configuration can compute: a
    pepper removed from REGISTRY_PREVIOUS_PEPPERS (or put in the wrong order) would make its
    rows unmatchable. Runs with the database checks (`migrate`, `check --database default`)."""
    if not databases:
        return []
    from registry.services.jobs.rotation import stored_pepper_versions
    from registry.tokens import current_pepper_version

    configured = current_pepper_version()
    errors = []
    for database in databases:
        try:
            stored = stored_pepper_versions(using=database)
        except DatabaseError:
            continue  # not migrated yet: nothing is stored
        beyond = sorted(v for v in stored if v > configured)
        if beyond:
            errors.append(
                Error(
                    f"Digests are stored at pepper version(s) {beyond} but only {configured} "
                    "pepper(s) are configured: those rows match nothing.",
                    hint="Configure every pepper, oldest first: REGISTRY_PREVIOUS_PEPPERS "
                    "then REGISTRY_PEPPER (never remove one).",
                    id="registry.E014",
                )
            )
    return errors

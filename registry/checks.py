"""System checks that fail fast on bad configuration (run by every manage.py command and at
server start)."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@register(Tags.security, deploy=False)
def check_registry_secrets(app_configs, **kwargs):
    errors = []
    if settings.REGISTRY_PROCESS == "web" and not HEX64.match(settings.REGISTRY_OPRF_SEED or ""):
        errors.append(
            Error(
                "REGISTRY_OPRF_SEED must be 32 bytes written as 64 hex characters.",
                hint="Generate one with: python -c 'import secrets; print(secrets.token_hex(32))'",
                id="registry.E001",
            )
        )
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
    return errors


@register(Tags.compatibility)
def check_registry_rules(app_configs, **kwargs):
    errors = []
    if not 1 <= settings.REGISTRY_DISPUTE_DEADLINE_DAYS <= 20:
        errors.append(
            Error(
                "REGISTRY_DISPUTE_DEADLINE_DAYS must be between 1 and 20 (disputes are decided "
                "within 20 days).",
                id="registry.E010",
            )
        )
    if not 1 <= settings.REGISTRY_DEFAULT_RETENTION_DAYS <= 1827:
        errors.append(
            Error(
                "REGISTRY_DEFAULT_RETENTION_DAYS must be 1..1827 (five years).", id="registry.E011"
            )
        )
    if not 1 <= settings.REGISTRY_COMPLIANCE_KEY_DAYS <= 366:
        errors.append(Error("REGISTRY_COMPLIANCE_KEY_DAYS must be 1..366.", id="registry.E013"))
    if settings.REGISTRY_VELOCITY_RETENTION_DAYS < 90:
        errors.append(
            Error(
                "REGISTRY_VELOCITY_RETENTION_DAYS must cover the 90-day window.", id="registry.E012"
            )
        )
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
                    id="registry.E004",
                )
            )
    return errors

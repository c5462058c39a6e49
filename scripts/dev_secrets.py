#!/usr/bin/env python3
"""Development secrets for `make run`: generated once under var/secrets (never committed),
and var/dev.env, which points the *_FILE settings at them. Values already set in the
environment win, so `DATABASE_URL=... make run` switches to production parts."""

import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
SECRETS = VAR / "secrets"

GENERATED = {
    "django_secret_key": lambda: secrets.token_urlsafe(50),
    "oprf_seed": lambda: secrets.token_hex(32),
    "pepper": lambda: secrets.token_hex(32),
    "audit_seal_key": lambda: secrets.token_hex(32),
    "audit_signing_seed": lambda: secrets.token_hex(32),
}


def ensure_secret(name: str) -> Path:
    path = SECRETS / name
    if not path.exists():
        path.write_text(GENERATED[name]() + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path


def main() -> None:
    SECRETS.mkdir(parents=True, exist_ok=True)
    SECRETS.chmod(0o700)
    for folder in ("broker", "broker-done", "broker-control", "checkpoints"):
        (VAR / folder).mkdir(exist_ok=True)
    defaults = {
        "REGISTRY_ENV": "development",
        "DJANGO_SECRET_KEY_FILE": ensure_secret("django_secret_key"),
        "REGISTRY_OPRF_SEED_FILE": ensure_secret("oprf_seed"),
        "REGISTRY_PEPPER_FILE": ensure_secret("pepper"),
        "REGISTRY_AUDIT_SEAL_KEY_FILE": ensure_secret("audit_seal_key"),
        "REGISTRY_AUDIT_SIGNING_SEED_FILE": ensure_secret("audit_signing_seed"),
        "REGISTRY_AUDIT_CHECKPOINT_DIR": VAR / "checkpoints",
        "CELERY_BROKER_URL": "filesystem://",
    }
    lines = [f'export {k}="${{{k}:-{v}}}"' for k, v in defaults.items()]
    (VAR / "dev.env").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""The development environment of `make run`, for scripts started from a fresh shell.

`make run` sources var/dev.env (written by dev_secrets.py) and finds its PostgreSQL with
services.py; a command it prints, run later in another terminal, has neither. `load()` gives
such a script the same environment: the values already set win, as in `make run`.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_EXPORT = re.compile(r'^export (\w+)="\$\{\w+:-(.*)\}"$')


def var_dir() -> Path:
    return Path(os.environ.get("REGISTRY_DEV_VAR") or ROOT / "var")


def load() -> None:
    dev_env = var_dir() / "dev.env"
    if not dev_env.exists():
        sys.exit("No development environment yet: run `make run` once first.")
    # dev.env: the secrets' files; run.env: the database `make run` last used.
    for path in (dev_env, var_dir() / "run.env"):
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in lines:
            match = _EXPORT.match(line.strip())
            if match:
                os.environ.setdefault(match.group(1), match.group(2))
    if "DATABASE_URL" not in os.environ:
        sys.path.insert(0, str(ROOT / "scripts"))
        from services import postgres_url

        os.environ["DATABASE_URL"] = postgres_url("registry", prefer_embedded=True)

#!/usr/bin/env python3
"""Three local custodians (2-of-3) beside `make run`, for a demo of key custody:

    make custodians        # in a second shell, after `make run` has run once

Splits the development key (var/secrets/oprf_seed, so every token stays the same) with
`manage.py oprf_keygen`, gives each custodian its own database and a key for the demo member,
and serves them on 127.0.0.1:8101-8103 until Ctrl-C. It prints how to restart `make run` so
that the registry holds no share and publishes the custodians, and the client's settings.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import ensure_database

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "custodians"
SEED = ROOT / "var" / "secrets" / "oprf_seed"
PORTS = (8101, 8102, 8103)
MEMBER = "DEMO_LENDER"


def manage(*args: str, env: dict) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip()


def custodian_env(index: int, database_url: str) -> dict:
    return {
        **os.environ,
        "REGISTRY_ROLE": "custodian",
        "DATABASE_URL": database_url,
        "REGISTRY_OPRF_SHARE_FILE": str(OUT / f"custodian-{index}.share.json"),
        "REGISTRY_OPRF_KEYS_FILE": str(OUT / "public_keys.json"),
    }


def prepare(index: int) -> tuple[dict, str]:
    """Database, migrations, the demo member and its key at custodian `index`."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path=f"/registry_custodian_{index}"))
    ensure_database(database_url)
    env = custodian_env(index, database_url)
    manage("migrate", "--no-input", env=env)
    key_path = OUT / f"custodian-{index}.member_key"
    if not key_path.exists():
        manage("create_member", MEMBER, "--name", "Demo Lender", env=env)
        key = manage("issue_api_key", "--member", MEMBER, "--scope", "lookup", env=env)
        key_path.write_text(key.splitlines()[-1])
        key_path.chmod(0o600)
    return env, key_path.read_text().strip()


def main() -> None:
    if not SEED.exists() or "DATABASE_URL" not in os.environ:
        sys.exit("Run `make run` once first (it makes var/secrets), then `make custodians`.")
    if not (OUT / "public_keys.json").exists():
        urls = [arg for port in PORTS for arg in ("--url", f"http://127.0.0.1:{port}")]
        OUT.mkdir(parents=True, exist_ok=True)
        manage(
            "oprf_keygen", "--threshold=2", "--custodians=3", f"--out={OUT}",
            f"--seed-file={SEED}", *urls, env=dict(os.environ),
        )  # fmt: skip
    prepared = [prepare(index) for index in (1, 2, 3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
        )
        for port, (env, _key) in zip(PORTS, prepared, strict=True)
    ]
    keys = ",".join(f"custodian-{i}={key}" for i, (_env, key) in enumerate(prepared, start=1))
    print(
        f"""
Three custodians (2-of-3) on 127.0.0.1:{PORTS[0]}-{PORTS[-1]}. Stop any one: tokens still work.
  Restart the registry without a key share:  REGISTRY_OPRF_KEYS_FILE={OUT}/public_keys.json make run
  Then, for the client:                      export REGISTRY_CUSTODIAN_KEYS="{keys}"
""",
        flush=True,
    )
    signal.signal(signal.SIGINT, lambda *_: None)
    for process in processes:
        process.wait()


if __name__ == "__main__":
    main()

"""The commands `make run` prints work as printed from a fresh shell (issue 18, first hour):
no DJANGO_* or REGISTRY_* variables, no DATABASE_URL, only the files `make run` left in var/."""

import os
import re
import subprocess
import sys

import pytest

from registry.actors import Actor
from registry.services.otp import totp_device_create
from tests.support import servers
from tests.support.servers import ROOT
from tests.support.world import make_officer

pytestmark = pytest.mark.django_db(transaction=True)


def dev_var(tmp_path, database_url: str):
    """What `make run` leaves in var/: dev.env (secrets' files) and run.env (its database)."""
    secrets = {
        "DJANGO_SECRET_KEY": "d" * 60,
        "REGISTRY_OPRF_SEED": "11" * 32,
        "REGISTRY_PEPPER": "22" * 32,
        "REGISTRY_AUDIT_SEAL_KEY": "33" * 32,
        "REGISTRY_AUDIT_SIGNING_SEED": "44" * 32,
    }
    lines = ['export REGISTRY_ENV="${REGISTRY_ENV:-development}"']
    for name, value in secrets.items():
        path = tmp_path / name.lower()
        path.write_text(value)
        lines.append(f'export {name}_FILE="${{{name}_FILE:-{path}}}"')
    (tmp_path / "dev.env").write_text("\n".join(lines) + "\n")
    (tmp_path / "run.env").write_text(f'export DATABASE_URL="${{DATABASE_URL:-{database_url}}}"\n')
    return tmp_path


def fresh_shell(**extra) -> dict:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


def test_it_prints_a_totp_command_that_works_from_a_fresh_shell(tmp_path):
    officer = make_officer("desk")
    totp_device_create(actor=Actor.system(), user=officer.user)
    var = dev_var(tmp_path, servers.test_database_url())
    printed = [sys.executable, "scripts/totp_code.py", "desk"]  # as dev_bootstrap prints it
    result = subprocess.run(
        printed,
        cwd=ROOT,
        env=fresh_shell(REGISTRY_DEV_VAR=str(var)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.match(r"^\d{6}  \(valid for \d+ s\)$", result.stdout.strip())


def test_it_says_what_to_do_before_make_run_has_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/totp_code.py", "desk"],
        cwd=ROOT,
        env=fresh_shell(REGISTRY_DEV_VAR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "make run" in result.stderr

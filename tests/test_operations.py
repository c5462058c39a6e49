"""Management commands, readiness, and the configuration checks."""

import io
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from registry.models import ApiKey, Member
from registry.services.api_keys import api_key_authenticate
from tests.support import ROOT

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_creates_a_member_and_issues_a_key_printed_last():
    run("create_member", "ACME_LOANS", "--name", "Acme Loans")
    output = run(
        "issue_api_key", "--member", "ACME_LOANS", "--scope", "lookup", "--scope", "submit"
    )
    key = output.strip().splitlines()[-1]
    api_key = api_key_authenticate(key)
    assert api_key.member.code == "ACME_LOANS"
    assert sorted(api_key.scopes) == ["lookup", "submit"]


def test_it_refuses_a_bad_member_code_or_a_duplicate():
    with pytest.raises(CommandError):
        run("create_member", "lower-case", "--name", "Nope")
    run("create_member", "ACME_LOANS", "--name", "Acme Loans")
    with pytest.raises(CommandError, match="already exists"):
        run("create_member", "ACME_LOANS", "--name", "Again")
    assert Member.objects.count() == 1


def test_it_refuses_a_key_for_an_unknown_member():
    with pytest.raises(CommandError, match="No member"):
        run("issue_api_key", "--member", "NOBODY", "--scope", "lookup")
    assert not ApiKey.objects.exists()


def test_it_creates_an_officer_with_a_second_factor_and_a_compliance_key(tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("a long officer passphrase 7\n")
    output = run("create_officer", "wang.fang", "--password-file", str(password_file))
    assert "otpauth://totp/" in output
    user = get_user_model().objects.get(username="wang.fang")
    assert user.is_staff and not user.is_superuser
    assert user.groups.filter(name="compliance_officers").exists()
    assert user.check_password("a long officer passphrase 7")
    assert user.password.startswith("argon2")
    key = run("issue_api_key", "--officer", "wang.fang").strip().splitlines()[-1]
    assert api_key_authenticate(key).scopes == ["compliance"]


def test_it_refuses_a_weak_officer_password(tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("123\n")
    with pytest.raises(CommandError):
        run("create_officer", "weak", "--password-file", str(password_file))
    assert not get_user_model().objects.filter(username="weak").exists()


def test_it_is_ready_when_database_and_broker_answer(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"


def test_it_is_not_ready_naming_the_broker_when_it_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "service_unavailable" and "broker" in body["failed"]
    assert "database" not in body["failed"]
    assert response["Retry-After"]


def settings_subprocess(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_in_production_without_secrets():
    env = {"PATH": "/usr/bin:/bin", "REGISTRY_ENV": "production"}
    result = settings_subprocess(env)
    assert result.returncode != 0
    assert "REGISTRY_OPRF_SEED" in result.stderr and "REGISTRY_PEPPER" in result.stderr


def test_it_fails_the_system_check_on_a_bad_seed():
    env = {"PATH": "/usr/bin:/bin", "REGISTRY_ENV": "test", "REGISTRY_OPRF_SEED": "abc"}
    result = settings_subprocess(env)
    assert result.returncode != 0 and "registry.E001" in result.stderr

"""Signing in to the admin: password and TOTP code, lock-out (per account and
address), sessions, and `create_officer`, which sets up the second factor."""

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.support.admin import (
    ADMIN,
    LOGIN,
    MODEL_BACKEND,
    code_for,
    device_of,
    login,
    make_superuser,
)
from tests.support.audit import events
from tests.support.world import OFFICER_PASSWORD

pytestmark = pytest.mark.django_db


def test_it_signs_an_officer_in_with_password_and_totp_code(world):
    device = device_of(world.officer.user)
    client = Client()
    assert client.get(ADMIN).status_code == 302  # to the login page

    response = login(client, "officer", OFFICER_PASSWORD, code_for(device))

    assert response.status_code == 302 and response["Location"] == ADMIN
    page = client.get(ADMIN)
    assert page.status_code == 200
    assert b'id="dashboard"' in page.content


def test_it_refuses_a_wrong_or_missing_code_and_a_wrong_password(world):
    device = device_of(world.officer.user)
    client = Client()
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"
    for password, code in (
        (OFFICER_PASSWORD, wrong),
        (OFFICER_PASSWORD, ""),
        ("not the password", code_for(device)),
    ):
        response = login(client, "officer", password, code)
        assert response.status_code == 200
        assert response.context["form"].errors
        assert client.get(ADMIN).status_code == 302


def test_it_does_not_let_a_staff_user_in_on_a_password_alone(world):
    """OTPAdminSite: a session without a verified second factor is not an admin session."""
    client = Client()
    client.force_login(world.officer.user, backend=MODEL_BACKEND)
    response = client.get(ADMIN)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_it_tells_a_user_without_an_authenticator_how_to_get_one(world):
    response = login(Client(), "officer", OFFICER_PASSWORD, "123456")
    assert response.status_code == 200
    assert "create_officer" in " ".join(response.context["form"].non_field_errors())


def test_it_locks_an_account_out_after_repeated_failures(world):
    """Wrong codes count like wrong passwords: guessing TOTP codes locks the account too."""
    device = device_of(world.officer.user)
    client = Client()
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"
    statuses = [
        login(client, "officer", OFFICER_PASSWORD if i % 2 else "bad password", wrong).status_code
        for i in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses[-1] == 429  # the last failure locks

    response = login(client, "officer", OFFICER_PASSWORD, code_for(device, drift=1))
    assert response.status_code == 429
    assert "This account is locked" in response.content.decode()
    assert client.get(ADMIN).status_code == 302


def test_it_does_not_let_a_stranger_lock_an_officer_out_from_elsewhere(world):
    """Someone on the internet fails logins as "officer" until the lockout: the officer, at
    their own address (both behind the same nginx, which passes the address it saw), still
    signs in; the stranger stays locked out."""
    device = device_of(world.officer.user)
    behind_nginx = {"REMOTE_ADDR": "127.0.0.1"}
    stranger = Client(**behind_nginx, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.66")
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        last = login(stranger, "officer", "bad password", "000000")
    assert last.status_code == 429
    assert login(stranger, "officer", OFFICER_PASSWORD, code_for(device)).status_code == 429

    officer = Client(**behind_nginx, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert login(officer, "officer", OFFICER_PASSWORD, code_for(device)).status_code == 302
    assert officer.get(ADMIN).status_code == 200


def test_it_expires_sessions(world):
    device = device_of(world.officer.user)
    client = Client()
    response = login(client, "officer", OFFICER_PASSWORD, code_for(device))
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # ends with the browser
    assert 0 < client.session.get_expiry_age() <= settings.SESSION_COOKIE_AGE <= 12 * 3600
    assert cookie["httponly"]


def test_create_officer_sets_up_the_second_factor_end_to_end(db, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text(OFFICER_PASSWORD)
    out = io.StringIO()

    call_command("create_officer", "wang.fang", "--password-file", str(password_file), stdout=out)

    uri = re.search(r"otpauth://\S+", out.getvalue()).group(0)
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    device = TOTPDevice.objects.get(user__username="wang.fang")
    assert secret == __import__("base64").b32encode(device.bin_key).decode().rstrip("=")
    client = Client()
    response = login(client, "wang.fang", OFFICER_PASSWORD, code_for(device))
    assert response.status_code == 302
    assert client.get(ADMIN).status_code == 200


def test_create_officer_can_reset_the_second_factor_of_an_existing_user(db):
    user = make_superuser("ops")
    out = io.StringIO()
    call_command("create_officer", "ops", "--reset-totp", stdout=out)
    device = TOTPDevice.objects.get(user=user)
    assert "otpauth://" in out.getvalue()
    assert events("officer.totp_created", object_id="ops").count() == 1
    client = Client()
    assert login(client, "ops", OFFICER_PASSWORD, code_for(device)).status_code == 302


def test_an_officer_without_second_factor_session_cannot_reach_custom_views(world):
    client = Client()
    client.force_login(world.officer.user, backend=MODEL_BACKEND)
    for url in ("subject-access/", "registry/auditevent/export/", "registry/auditevent/verify/"):
        response = client.get(ADMIN + url)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN), url

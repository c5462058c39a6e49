#!/usr/bin/env python3
"""First start of `make run`: a demo member with an API key and a demo officer with a
password and a TOTP second factor. Their credentials are kept under var/secrets (development
only) so that every start can print them."""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ROOT / "var" / "secrets"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django_otp.plugins.otp_totp.models import TOTPDevice  # noqa: E402

from registry.actors import Actor  # noqa: E402
from registry.models import Member  # noqa: E402
from registry.services.api_keys import api_key_issue  # noqa: E402
from registry.services.members import member_create, officer_create  # noqa: E402
from registry.services.otp import totp_device_create  # noqa: E402

DEMO_MEMBER = "DEMO_LENDER"
DEMO_OFFICER = "officer"


def demo_member_key() -> str:
    path = SECRETS / "demo_member_key"
    if not Member.objects.filter(code=DEMO_MEMBER).exists():
        member = member_create(
            actor=Actor.system(),
            code=DEMO_MEMBER,
            name="Demo Lender",
            contact_email="risk@demo-lender.example",
        )
        issued = api_key_issue(
            actor=Actor.system(), member=member, scopes=["lookup", "submit", "dispute"], name="demo"
        )
        path.write_text(issued.raw_key, encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip() if path.exists() else "(see var/secrets)"


def demo_officer() -> tuple[str, str]:
    password_path = SECRETS / "officer_password"
    User = get_user_model()
    if not User.objects.filter(username=DEMO_OFFICER).exists():
        password = secrets.token_urlsafe(12)
        user = officer_create(
            actor=Actor.system(),
            username=DEMO_OFFICER,
            password=password,
            email="officer@registry.example",
        )
        totp_device_create(actor=Actor.system(), user=user)
        password_path.write_text(password, encoding="utf-8")
        password_path.chmod(0o600)
    device = TOTPDevice.objects.filter(user__username=DEMO_OFFICER).first()
    password = password_path.read_text(encoding="utf-8").strip() if password_path.exists() else "?"
    return password, device.config_url if device else "(none)"


def main() -> None:
    key = demo_member_key()
    password, otp_uri = demo_officer()
    base = "http://127.0.0.1:8000"
    print(
        f"""
Consortium registry (development)
  API docs:        {base}/api/v1/docs/
  Admin:           {base}/admin/
  Demo member key: {key}
  Try it:          curl -H "Authorization: Bearer {key}" {base}/api/v1/audit-events
  Demo officer:    {DEMO_OFFICER} / {password}
  Officer TOTP:    {otp_uri}
                   (add it to an authenticator app, or print a code with:
                    .venv/bin/python scripts/totp_code.py {DEMO_OFFICER})
""",
        flush=True,
    )


if __name__ == "__main__":
    main()

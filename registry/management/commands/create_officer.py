import getpass
import io
from pathlib import Path

import qrcode
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.actors import Actor
from registry.errors import RegistryError
from registry.services.members import officer_create
from registry.services.otp import totp_device_create


class Command(BaseCommand):
    help = (
        "Create a compliance officer (staff user in the compliance_officers group) and their "
        "TOTP second factor. Password from the prompt or --password-file."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password-file", type=Path)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--reset-totp",
            action="store_true",
            help="Give an existing staff user (e.g. one made by createsuperuser) a new TOTP "
            "second factor, replacing any old one; the password is left alone.",
        )

    def handle(self, *args, username, password_file, email, reset_totp=False, **options):
        if reset_totp:
            self._reset_totp(username)
            return
        password = self._password(password_file)
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        try:
            user = officer_create(
                actor=Actor.system(), username=username, password=password, email=email
            )
        except RegistryError as exc:
            raise CommandError(exc.detail) from None
        device = totp_device_create(actor=Actor.system(), user=user)
        self.stdout.write(f"Created officer {username}.")
        self._print_device(device)

    def _reset_totp(self, username: str) -> None:
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff user {username}.")
        device = totp_device_create(actor=Actor.system(), user=user)
        self.stdout.write(f"New second factor for {username} (the old one no longer works).")
        self._print_device(device)

    def _print_device(self, device) -> None:
        self.stdout.write(
            "Second factor: add this TOTP secret to an authenticator app, then sign in at "
            "/admin/ with the 6-digit code:"
        )
        self.stdout.write(f"  otpauth URI: {device.config_url}")
        self.stdout.write("  or scan:")
        code = qrcode.QRCode(border=1)
        code.add_data(device.config_url)
        buffer = io.StringIO()
        code.print_ascii(out=buffer)
        self.stdout.write(buffer.getvalue())

    def _password(self, password_file: Path | None) -> str:
        if password_file is not None:
            try:
                return password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CommandError(f"Cannot read {password_file}: {exc}") from None
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("Passwords do not match.")
        return first

from django.core.management.base import BaseCommand, CommandError

from registry.actors import Actor
from registry.errors import RegistryError
from registry.services.members import member_create


class Command(BaseCommand):
    help = "Create a member institution (CODE: 2–32 of A-Z, 0-9 and _)."

    def add_arguments(self, parser):
        parser.add_argument("code")
        parser.add_argument("--name", required=True)
        parser.add_argument("--contact-email", default="")

    def handle(self, *args, code, name, contact_email, **options):
        try:
            member = member_create(
                actor=Actor.system(), code=code, name=name, contact_email=contact_email
            )
        except RegistryError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"Created member {member.code}")

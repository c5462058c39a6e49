from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.actors import Actor
from registry.errors import RegistryError
from registry.models import Member
from registry.services.api_keys import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for a member (--member CODE --scope ...) or an officer (--officer)."

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--member", metavar="CODE")
        owner.add_argument("--officer", metavar="USERNAME")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            choices=["lookup", "submit", "dispute", "compliance", "compliance_read"],
            help="a member's: lookup (default), submit, dispute; an officer's: compliance "
            "(default), compliance_read (an auditor's only)",
        )
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, member, officer, scope, name, **options):
        try:
            if member:
                owner = {"member": Member.objects.get(code=member)}
                scopes = scope or ["lookup"]
            else:
                owner = {"officer": get_user_model().objects.get(username=officer, is_staff=True)}
                scopes = scope or ["compliance"]
        except Member.DoesNotExist:
            raise CommandError(f"No member {member}") from None
        except get_user_model().DoesNotExist:
            raise CommandError(f"No staff user {officer}") from None
        try:
            issued = api_key_issue(actor=Actor.system(), scopes=scopes, name=name, **owner)
        except RegistryError as exc:
            raise CommandError(exc.detail) from None
        expires = issued.api_key.expires_at
        until = f" Expires {expires.isoformat()}." if expires else ""
        self.stderr.write(
            f"Scopes: {', '.join(issued.api_key.scopes)}.{until} Shown once; store it now."
        )
        self.stdout.write(issued.raw_key)

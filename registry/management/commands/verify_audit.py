import sys

from django.core.management.base import BaseCommand

from registry.services.audit import audit_seal, audit_verify


class Command(BaseCommand):
    help = "Check the audit trail's hash chain; exit non-zero naming the first bad event."

    def add_arguments(self, parser):
        parser.add_argument(
            "--seal-first", action="store_true", help="seal pending events before verifying"
        )

    def handle(self, *args, seal_first, **options):
        if seal_first:
            audit_seal()
        result = audit_verify()
        if result.ok:
            self.stdout.write(
                f"Audit trail intact: {result.checked} sealed events verified, "
                f"{result.unsealed} awaiting seal."
            )
            return
        self.stderr.write(
            f"Audit trail BROKEN at event {result.first_bad_event_id}: {result.problem} "
            f"({result.checked} events verified before it)."
        )
        sys.exit(1)

import json

from django.core.management.base import BaseCommand

from registry.services.audit import audit_checkpoint, audit_checkpoint_latest, checkpoint_document


class Command(BaseCommand):
    help = (
        "Print the newest signed checkpoint of the audit chain as JSON (to keep outside the "
        "database); --now signs the current head first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="sign the current head now")

    def handle(self, *args, now, **options):
        checkpoint = audit_checkpoint(force=True) if now else None
        if now and checkpoint is None:
            self.stderr.write("Not signed now (nothing sealed, or the sealer is at work).")
        checkpoint = checkpoint or audit_checkpoint_latest()
        if checkpoint is None:
            self.stderr.write("No checkpoint yet: nothing is sealed.")
            raise SystemExit(1)
        self.stdout.write(json.dumps(checkpoint_document(checkpoint), indent=2))

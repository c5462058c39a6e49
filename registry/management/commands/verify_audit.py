import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from registry.services.audit import (
    CheckpointError,
    audit_seal,
    audit_verify,
    checkpoint_parse,
    signing_public_key,
)


class Command(BaseCommand):
    help = (
        "Check the audit trail's keyed hash chain and its signed checkpoints; exit non-zero "
        "naming the first bad event. --checkpoint FILE also proves the chain against a "
        "checkpoint kept outside the database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--seal-first", action="store_true", help="seal pending events before verifying"
        )
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="a checkpoint JSON file kept outside the database (repeatable)",
        )
        parser.add_argument(
            "--public-key",
            action="append",
            default=[],
            metavar="HEX",
            help="also trust checkpoints signed by this Ed25519 public key (e.g. a key "
            "used before a rotation); the configured signing key is always trusted",
        )

    def handle(self, *args, seal_first, checkpoint, public_key, **options):
        trusted = {signing_public_key(), *public_key}
        checkpoints = []
        for path in checkpoint:
            try:
                text = Path(path).read_text(encoding="utf-8")
                checkpoints.append(checkpoint_parse(text, trusted_public_keys=trusted, source=path))
            except (OSError, UnicodeDecodeError):
                self._fail(f"Checkpoint REFUSED: cannot read {path}.")
            except CheckpointError as exc:
                self._fail(f"Checkpoint REFUSED: {exc}.")
        if seal_first:
            audit_seal()
        result = audit_verify(checkpoints=tuple(checkpoints))
        if result.ok:
            self.stdout.write(
                f"Audit trail intact: {result.checked} sealed events verified, "
                f"{result.unsealed} awaiting seal, {result.checkpoints} checkpoints matched "
                f"({len(checkpoints)} from files)."
            )
            return
        where = f" at event {result.first_bad_event_id}" if result.first_bad_event_id else ""
        self._fail(
            f"Audit trail BROKEN{where}: {result.problem} "
            f"({result.checked} sealed events verified first)."
        )

    def _fail(self, message: str):
        self.stderr.write(message)
        sys.exit(1)

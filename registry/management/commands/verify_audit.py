import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from registry.actors import Actor
from registry.services.audit import (
    CheckpointError,
    audit_seal,
    audit_verification_run,
    checkpoint_parse,
    signing_public_key,
)


class Command(BaseCommand):
    help = (
        "Check the audit trail's keyed hash chain and its signed checkpoints; exit non-zero "
        "naming the first bad event. By default only the seals after the newest checkpoint "
        "an earlier run verified (--full: every seal). --checkpoint FILE also proves the chain "
        "against a checkpoint kept outside the database; --archive FILE verifies an archived "
        "month offline, without the database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--seal-first", action="store_true", help="seal pending events before verifying"
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="walk every seal from the first one kept (not only those after the newest "
            "verified checkpoint)",
        )
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="a checkpoint JSON file kept outside the database (repeatable)",
        )
        parser.add_argument(
            "--archive",
            metavar="FILE",
            help="verify an archived month (manage.py audit_archive) offline: the sealing key "
            "and the trusted public keys come from configuration, nothing from the database",
        )
        parser.add_argument(
            "--public-key",
            action="append",
            default=[],
            metavar="HEX",
            help="also trust checkpoints signed by this Ed25519 public key (e.g. a key "
            "used before a rotation); the configured signing key is always trusted",
        )

    def handle(self, *args, seal_first, full, checkpoint, archive, public_key, **options):
        trusted = {signing_public_key(), *public_key}
        if archive:
            self._verify_archive(archive, trusted)
            return
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
        result = audit_verification_run(
            actor=Actor.system(), checkpoints=tuple(checkpoints), full=full
        )
        walked = (
            f"seals {result.anchor_seq + 1}-{result.head_seq}"
            if result.head_seq > result.anchor_seq
            else "no new seals"
        )
        if result.anchor_seq:
            walked += f", after the checkpoint verified at seal {result.anchor_seq}"
        if result.archived:
            walked += f", {result.archived} seals in archived months"
        if result.ok:
            self.stdout.write(
                f"Audit trail intact ({'full' if full else 'incremental'}: {walked}): "
                f"{result.checked} sealed events verified, {result.unsealed} awaiting seal, "
                f"{result.checkpoints} checkpoints matched ({len(checkpoints)} from files)."
            )
            return
        where = f" at event {result.first_bad_event_id}" if result.first_bad_event_id else ""
        self._fail(
            f"Audit trail BROKEN{where}: {result.problem} "
            f"({result.checked} sealed events verified first; {walked})."
        )

    def _verify_archive(self, path: str, trusted: set[str]) -> None:
        from registry.services.audit_archive import audit_archive_verify

        report = audit_archive_verify(path=path, trusted_public_keys=trusted)
        if report.ok:
            self.stdout.write(
                f"Archive intact: {report.month}, seals {report.first_seq}-{report.last_seq} "
                f"({report.seals} in the file, {report.elsewhere} archived with an earlier "
                f"month), {report.events_in_month} events of the month, "
                f"{report.checkpoints} checkpoints matched; SHA-256 {report.file_sha256}."
            )
            return
        where = f" at event {report.first_bad_event_id}" if report.first_bad_event_id else ""
        seal = f" (seal {report.bad_seq})" if report.bad_seq else ""
        self._fail(f"Archive BROKEN{where}{seal}: {report.problem}.")

    def _fail(self, message: str):
        self.stderr.write(message)
        sys.exit(1)

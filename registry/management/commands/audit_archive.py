import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from registry.actors import Actor
from registry.services.audit_archive import ArchiveError, audit_archive_month


def month_argument(text: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise CommandError(f"--month must be YYYY-MM, not {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Export one UTC month of the audit trail (its events, their seals and the signed "
        "checkpoints that cover them) to a gzip JSON-lines file that verify_audit --archive "
        "checks offline; verify it and record it (the owner may then drop the month)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, type=month_argument, metavar="YYYY-MM")
        parser.add_argument("--out", required=True, metavar="FILE")

    def handle(self, *args, month, out, **options):
        try:
            archive = audit_archive_month(actor=Actor.system(), month=month, out_path=out)
        except ArchiveError as exc:
            self.stderr.write(f"Not archived: {exc}.")
            sys.exit(1)
        self.stdout.write(
            f"Archived {archive.month:%Y-%m}: {archive.events} events, seals "
            f"{archive.first_seq}-{archive.last_seq}, to {out} (SHA-256 {archive.file_sha256}). "
            "Keep the file (and a copy) outside this machine before dropping the month."
        )

"""Drop an archived month of the audit trail (its events and their seals), as the owner.

    DATABASE_OWNER_URL=... python manage.py audit_drop_month --month 2021-11

Refused unless a verified archive of that month is recorded (AuditArchive, written by the
archive step) and describes exactly what the database holds, every event of the month is
sealed, the month is past the audit retention period and no older month is left. The runtime
role can do none of this: it owns no table, and the partition functions it may call refuse
the audit tables (docs/operations.md "Partitions").
"""

from django.core.management.base import BaseCommand, CommandError

from registry.actors import Actor
from registry.services.partitions import PartitionRefused, audit_month_drop, parse_month


class Command(BaseCommand):
    help = (
        "Drop one archived month of the audit trail (events and seals): owner only "
        "(DATABASE_OWNER_URL), and only with a verified archive of that month recorded."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, metavar="YYYY-MM")

    def handle(self, *args, month, **options):
        try:
            dropped = audit_month_drop(actor=Actor.system(), month=parse_month(month))
        except PartitionRefused as exc:
            raise CommandError(f"Refused: {exc}.") from None
        seals = f"seals {dropped.first_seq}..{dropped.last_seq}" if dropped.events else "no seals"
        self.stdout.write(
            f"Dropped the audit month {dropped.month:%Y-%m}: {dropped.events} events, {seals}."
        )

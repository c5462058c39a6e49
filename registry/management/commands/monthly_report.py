"""`manage.py monthly_report --month 2026-11 [--format pdf|csv] [--out FILE]`: the regulator's
monthly report (registry/services/report.py), written to a file; audited as the admin's
download is."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from registry.actors import Actor
from registry.selectors.report import REPORT_TIMEZONE_NAME, ReportMonth
from registry.services.report import REPORT_FORMATS, REPORT_LANGUAGE, report_generate


class Command(BaseCommand):
    help = (
        "Write the regulator's monthly report (months in Asia/Shanghai) as PDF or CSV. "
        "Without --month: the last full month."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the last full month)")
        parser.add_argument("--format", choices=REPORT_FORMATS, default="pdf", dest="fmt")
        parser.add_argument(
            "--out", help="the file to write (default: regulator-report-YYYY-MM.<format>)"
        )
        parser.add_argument(
            "--language",
            default=REPORT_LANGUAGE,
            choices=["zh-hans", "en"],
            help="the report's language (default: zh-hans, the regulator's)",
        )

    def handle(self, *args, month, fmt, out, language, **options):
        now = timezone.now()
        if month:
            try:
                chosen = ReportMonth.parse(month)
            except ValueError:
                raise CommandError("--month must be YYYY-MM, e.g. 2026-11") from None
        else:
            chosen = ReportMonth.previous(now)
        if chosen.start > now:
            raise CommandError(f"{chosen} has not begun yet ({REPORT_TIMEZONE_NAME}).")
        report = report_generate(
            actor=Actor.system(), month=chosen, fmt=fmt, via="command", language=language, now=now
        )
        target = Path(out or report.filename)
        try:
            target.write_bytes(report.content)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror}") from None
        self.stdout.write(
            f"Wrote {target} ({report.format}, {len(report.content)} bytes, "
            f"SHA-256 {report.sha256}) for {chosen} ({REPORT_TIMEZONE_NAME})."
        )

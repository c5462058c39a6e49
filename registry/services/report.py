"""The regulator's monthly report (issue 19): the month's numbers (selectors/report.py), the
audit chain's state and the month's last checkpoint, as a PDF (WeasyPrint, from the Django
template registry/report/monthly.html, CJK fonts) or a CSV. Generating one is audited
(`report.generated`, with the file's SHA-256 so that a copy can be matched to its event),
whether an officer downloads it from the admin or an operator runs `manage.py
monthly_report`.

The report is written in the regulator's language (Simplified Chinese) unless asked
otherwise, and its times are in Asia/Shanghai, the regulator's calendar, which it states.
"""

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import Purpose
from registry.selectors.report import (
    REPORT_TIMEZONE,
    REPORT_TIMEZONE_NAME,
    MonthlyFigures,
    ReportMonth,
    report_figures,
)
from registry.services.audit import audit_record, audit_verify

REPORT_FORMATS = ("pdf", "csv")
REPORT_LANGUAGE = "zh-hans"
CONTENT_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    checked: int  # sealed events verified
    unsealed: int
    first_bad_event_id: int | None
    checkpoints: int
    verified_at: datetime


def report_chain_status() -> ChainStatus:
    """The audit chain's state for the report, checked incrementally: from the newest
    checkpoint an earlier verification passed (whose seal must still carry its signed hash)
    to the head, so that a download does not walk years of seals. The weekly `verify_audit
    --full` covers the rest (docs/security.md)."""
    result = audit_verify(incremental=True)
    return ChainStatus(
        ok=result.ok,
        checked=result.checked,
        unsealed=result.unsealed,
        first_bad_event_id=result.first_bad_event_id,
        checkpoints=result.checkpoints,
        verified_at=timezone.now(),
    )


@dataclass(frozen=True)
class RenderedReport:
    month: ReportMonth
    format: str
    filename: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def report_generate(
    *,
    actor: Actor,
    month: ReportMonth,
    fmt: str,
    via: str,
    language: str = REPORT_LANGUAGE,
    now: datetime | None = None,
) -> RenderedReport:
    """Compute, render and audit one month's report. `via`: "admin" or "command" (kept in
    the audit event). The numbers and the chain are read first, then the file is rendered,
    then the event is recorded with the file's digest: a report that cannot be audited is
    not handed out."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"format must be one of {REPORT_FORMATS}")
    now = now or timezone.now()
    figures = report_figures(
        month=month, deadline_days=settings.REGISTRY_DISPUTE_DEADLINE_DAYS, now=now
    )
    chain = report_chain_status()
    with translation.override(language):
        context = _context(figures, chain, actor=actor, via=via, now=now)
        content = _pdf(context) if fmt == "pdf" else _csv(context)
    report = RenderedReport(
        month=month,
        format=fmt,
        filename=f"regulator-report-{month}.{fmt}",
        content_type=CONTENT_TYPES[fmt],
        content=content,
    )
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.REPORT_GENERATED,
            object_type="report",
            object_id=str(month),
            details={
                "month": str(month),
                "format": fmt,
                "via": via,
                "language": language,
                "timezone": REPORT_TIMEZONE_NAME,
                "bytes": len(content),
                "sha256": report.sha256,
                "chain_ok": chain.ok,
                "checkpoint_seq": figures.checkpoint.seq if figures.checkpoint else None,
            },
        )
    return report


def report_local_time(moment: datetime | None) -> str:
    """A time as the report shows it: Asia/Shanghai, to the second, with its offset."""
    if moment is None:
        return ""
    local = moment.astimezone(REPORT_TIMEZONE)
    minutes = int(local.utcoffset().total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{local:%Y-%m-%d %H:%M:%S} ({offset})"


def _context(figures: MonthlyFigures, chain: ChainStatus, *, actor: Actor, via: str, now) -> dict:
    from registry.admin.common import category_label  # the contract's categories, in words

    month = figures.month
    return {
        "figures": figures,
        "chain": chain,
        "month": str(month),
        "year_number": month.year,
        "month_number": month.month,
        "timezone": REPORT_TIMEZONE_NAME,
        "period_start": report_local_time(month.start),
        "period_end": report_local_time(month.end),
        "generated_at": report_local_time(now),
        "generated_by": actor.officer_username,  # "": an operator's command
        "via": via,
        "categories": [
            {"row": row, "label": category_label(row.code, row.name)} for row in figures.categories
        ],
        "lookups": [{"row": row, "label": str(Purpose(row.code).label)} for row in figures.lookups],
        "checkpoint_signed_at": (
            report_local_time(figures.checkpoint.signed_at) if figures.checkpoint else ""
        ),
        "verified_at": report_local_time(chain.verified_at),
    }


def _pdf(context: dict) -> bytes:
    import weasyprint  # heavy; only the PDF needs it

    html = render_to_string("registry/report/monthly.html", context)
    return weasyprint.HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def _safe(value) -> str:
    """No cell may start a spreadsheet formula (a category's name is typed by an officer)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _breakdown_rows(section, key: str, items, measures, figures):
    """A table of the report as CSV rows: each item (category, purpose) by each measure, then
    the totals; the last column is the stable key (`cases.identity_theft.submitted`)."""
    for item in items:
        row = item["row"]
        for name, label in measures:
            yield [section, item["label"], label, getattr(row, name), f"{key}.{row.code}.{name}"]
    for name, label in measures:
        yield [section, _("Total"), label, figures.totals[key][name], f"{key}.total.{name}"]


def _figure_row(section, label, figures, name: str, key: str) -> list:
    return [section, label, "", getattr(figures, name), f"{key}.{name}"]


def report_csv_rows(context: dict):
    """The report as rows of (section, item, measure, value, key): one number per row, so
    that a spreadsheet or a script reads it without knowing the layout; `key` is a stable
    code (cases.identity_theft.submitted) for scripts."""
    figures: MonthlyFigures = context["figures"]
    chain: ChainStatus = context["chain"]
    yield [
        pgettext("report CSV column", "Section"),
        pgettext("report CSV column", "Item"),
        pgettext("report CSV column", "Measure"),
        pgettext("report CSV column", "Value"),
        pgettext("report CSV column", "Key"),
    ]

    about = _("Report")
    yield [about, _("Month"), "", context["month"], "report.month"]
    yield [about, _("Time zone"), "", context["timezone"], "report.timezone"]
    yield [about, _("Period from"), "", context["period_start"], "report.period_start"]
    yield [about, _("Period until (not included)"), "", context["period_end"], "report.period_end"]
    yield [about, _("Generated at"), "", context["generated_at"], "report.generated_at"]

    section = _("Cases by category")
    measures = (
        ("submitted", _("Submitted")),
        ("withdrawn", _("Withdrawn")),
        ("expired", _("Expired")),
        ("removed", _("Removed by dispute")),
        ("live_at_end", _("Live at month end")),
    )
    yield from _breakdown_rows(section, "cases", context["categories"], measures, figures)

    section = _("Disputes")
    d = figures.disputes
    for name, label in (
        ("filed", _("Filed")),
        ("upheld", _("Upheld")),
        ("rejected", _("Rejected")),
        ("open_at_end", _("Still open at month end")),
        ("open_past_deadline_at_end", _("Still open at month end, past the deadline")),
        ("deadline_days", _("Deadline (days)")),
        ("deadlines_in_month", _("Deadlines falling in the month")),
        ("deadline_met", _("Deadline met")),
        ("deadline_missed", _("Deadline missed")),
    ):
        yield _figure_row(section, label, d, name, "disputes")

    section = _("Subject-access requests")
    s = figures.subject_access
    for name, label in (
        ("requests", _("Requests")),
        ("via_admin", _("In the admin")),
        ("via_api", _("Through the API")),
        ("with_records", _("Requests that found records")),
        ("identifiers", _("Distinct identifiers")),
    ):
        yield _figure_row(section, label, s, name, "subject_access")

    section = _("Lookups by purpose")
    measures = (
        ("calls", _("Calls")),
        ("identifiers", _("Identifiers checked")),
        ("matches", _("Identifiers matched")),
    )
    yield from _breakdown_rows(section, "lookups", context["lookups"], measures, figures)

    section = _("Members")
    m = figures.members
    for name, label in (
        ("joined", _("Joined")),
        ("suspended", _("Suspended")),
        ("reinstated", _("Reinstated")),
    ):
        codes = getattr(m, name)
        yield [section, label, _("Count"), len(codes), f"members.{name}"]
        yield [section, label, _("Member codes"), " ".join(codes), f"members.{name}.codes"]
    yield [section, _("Members at month end"), "", m.members_at_end, "members.at_end"]
    yield [section, _("Suspended at month end"), "", m.suspended_at_end, "members.suspended_at_end"]

    section = _("Audit chain")
    yield [section, _("Chain intact"), "", _("yes") if chain.ok else _("no"), "audit.chain_ok"]
    yield [section, _("Sealed events verified"), "", chain.checked, "audit.checked"]
    yield [section, _("Events awaiting a seal"), "", chain.unsealed, "audit.unsealed"]
    yield [
        section,
        _("First event that fails"),
        "",
        chain.first_bad_event_id or "",
        "audit.first_bad_event_id",
    ]
    yield [section, _("Verified at"), "", context["verified_at"], "audit.verified_at"]
    cp = figures.checkpoint
    label = _("The month's last checkpoint")
    yield [section, label, _("Sealed events"), cp.seq if cp else "", "audit.checkpoint.seq"]
    yield [section, label, _("Chain hash"), cp.hash if cp else "", "audit.checkpoint.hash"]
    yield [
        section,
        label,
        _("Signed at"),
        context["checkpoint_signed_at"],
        "audit.checkpoint.signed_at",
    ]
    yield [section, label, _("Key id"), cp.key_id if cp else "", "audit.checkpoint.key_id"]


def _csv(context: dict) -> bytes:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # spreadsheet programs then read UTF-8 (Chinese labels)
    writer = csv.writer(buffer)
    for row in report_csv_rows(context):
        writer.writerow([_safe(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")

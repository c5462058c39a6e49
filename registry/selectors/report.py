"""The numbers of the regulator's monthly report (issue 19): aggregates only, never a case's,
a lookup's or an identifier's content. Months are calendar months in Asia/Shanghai, the
regulator's calendar, whatever TIME_ZONE the registry runs in.

Every count is for the half-open month [start, end) and is reproducible: it depends only on
what happened before the month's end (times the registry keeps on each row), so a report on
November reads the same on 1 December and on 15 December. The one exception is stated: live
cases are derived from today's live cases minus what changed since the month's end.

At 10M cases each query reads an index (migration 0014): `case_created` (cases by creation
time and category), `case_closed` (closed cases by closing time, category and status),
`case_live_category` (live cases by category), `lookup_created` (lookups by time, with their
purpose and counts), `audit_action` (subject access and member status events). Disputes and
members are small tables.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from registry.audit_actions import AuditAction
from registry.models import (
    LIVE_CASE_STATUSES,
    AuditCheckpoint,
    AuditEvent,
    Case,
    CaseStatus,
    Category,
    Dispute,
    DisputeStatus,
    Lookup,
    Member,
    Purpose,
)

REPORT_TIMEZONE_NAME = "Asia/Shanghai"
REPORT_TIMEZONE = ZoneInfo(REPORT_TIMEZONE_NAME)
CLOSED_CASE_STATUSES = (CaseStatus.WITHDRAWN, CaseStatus.REMOVED, CaseStatus.EXPIRED)
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class ReportMonth:
    """A calendar month in Asia/Shanghai: [start, end) as aware datetimes."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "ReportMonth":
        """`2026-11` (ValueError otherwise)."""
        match = MONTH_RE.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
            raise ValueError(text)
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, moment: datetime) -> "ReportMonth":
        local = moment.astimezone(REPORT_TIMEZONE)
        return cls(local.year, local.month)

    @classmethod
    def previous(cls, now: datetime | None = None) -> "ReportMonth":
        """The last full month (the report's default)."""
        return cls.containing(now or timezone.now()).shifted(-1)

    def shifted(self, months: int) -> "ReportMonth":
        index = self.year * 12 + self.month - 1 + months
        return ReportMonth(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=REPORT_TIMEZONE)

    @property
    def end(self) -> datetime:
        return self.shifted(1).start

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class CategoryRow:
    code: str
    name: str
    submitted: int
    withdrawn: int
    expired: int
    removed: int  # by an upheld dispute: the only way a case is removed
    live_at_end: int


@dataclass(frozen=True)
class DisputeFigures:
    filed: int
    upheld: int  # decided in the month
    rejected: int  # decided in the month
    open_at_end: int  # filed before the end, not decided by then
    open_past_deadline_at_end: int  # of those, their deadline passed before the end
    deadline_days: int
    deadlines_in_month: int  # disputes whose deadline fell in the month
    deadline_met: int  # of those, decided before their deadline
    deadline_missed: int  # decided at or after it, or not yet


@dataclass(frozen=True)
class SubjectAccessFigures:
    requests: int
    via_admin: int
    via_api: int
    with_records: int  # requests that found a case, a lookup or a watch
    identifiers: int  # distinct identifiers (fingerprints) asked about


@dataclass(frozen=True)
class PurposeRow:
    code: str
    calls: int
    identifiers: int
    matches: int


@dataclass(frozen=True)
class MemberFigures:
    joined: list[str]
    suspended: list[str]  # suspended during the month
    reinstated: list[str]  # reinstated during the month
    members_at_end: int
    suspended_at_end: int


@dataclass(frozen=True)
class CheckpointFigures:
    seq: int
    hash: str
    signed_at: datetime
    key_id: str


@dataclass(frozen=True)
class MonthlyFigures:
    month: ReportMonth
    categories: list[CategoryRow]
    disputes: DisputeFigures
    subject_access: SubjectAccessFigures
    lookups: list[PurposeRow]
    members: MemberFigures
    checkpoint: CheckpointFigures | None
    computed_at: datetime
    totals: dict = field(default_factory=dict)


def report_figures(*, month: ReportMonth, deadline_days: int, now: datetime | None = None):
    """Every number of the month's report (no audit event: the caller, which renders the
    report, records one)."""
    now = now or timezone.now()
    categories = report_cases_by_category(month=month, now=now)
    lookups = report_lookups_by_purpose(month=month)
    return MonthlyFigures(
        month=month,
        categories=categories,
        disputes=report_disputes(month=month, deadline_days=deadline_days),
        subject_access=report_subject_access(month=month),
        lookups=lookups,
        members=report_members(month=month),
        checkpoint=report_last_checkpoint(month=month),
        computed_at=now,
        totals={
            "cases": {
                name: sum(getattr(row, name) for row in categories)
                for name in ("submitted", "withdrawn", "expired", "removed", "live_at_end")
            },
            "lookups": {
                name: sum(getattr(row, name) for row in lookups)
                for name in ("calls", "identifiers", "matches")
            },
        },
    )


def _per_category(queryset, *extra) -> dict:
    return {
        tuple(row[:-1]): row[-1]
        for row in queryset.order_by()
        .values_list("category_id", *extra)
        .annotate(n=Count("*"))
        .values_list("category_id", *extra, "n")
    }


def report_cases_by_category(*, month: ReportMonth, now: datetime) -> list[CategoryRow]:
    """Per category: cases submitted, withdrawn, expired and removed in the month, and live at
    its end. Closed is final (services/case_lifecycle.py), and a case closes when its status
    changes, so a closed case's status_changed_at is when it closed.

    Live at the end = live now − submitted since the end + closed since the end (a case
    submitted after the end is live now or closed since; a case closed since the end was live
    at the end or submitted after it): three index reads instead of a scan of every case."""
    start, end = month.start, month.end
    submitted = _per_category(Case.objects.filter(created_at__gte=start, created_at__lt=end))
    closed = _per_category(
        Case.objects.filter(
            status__in=CLOSED_CASE_STATUSES, status_changed_at__gte=start, status_changed_at__lt=end
        ),
        "status",
    )
    live_now = _per_category(Case.objects.filter(status__in=LIVE_CASE_STATUSES))
    submitted_since = _per_category(Case.objects.filter(created_at__gte=end))
    closed_since = _per_category(
        Case.objects.filter(status__in=CLOSED_CASE_STATUSES, status_changed_at__gte=end)
    )
    rows = []
    for category in Category.objects.order_by("code"):
        code = (category.code,)
        rows.append(
            CategoryRow(
                code=category.code,
                name=category.name,
                submitted=submitted.get(code, 0),
                withdrawn=closed.get((category.code, CaseStatus.WITHDRAWN), 0),
                expired=closed.get((category.code, CaseStatus.EXPIRED), 0),
                removed=closed.get((category.code, CaseStatus.REMOVED), 0),
                live_at_end=live_now.get(code, 0)
                - submitted_since.get(code, 0)
                + closed_since.get(code, 0),
            )
        )
    return rows


def report_disputes(*, month: ReportMonth, deadline_days: int) -> DisputeFigures:
    """Disputes filed and decided in the month, open at its end, and the deadline (each
    dispute's due_at: filed_at + REGISTRY_DISPUTE_DEADLINE_DAYS when it was filed) met or
    missed by the disputes whose deadline fell in the month. A dispute is overdue from its
    due_at on (selectors/disputes.py), so a deadline is met by a decision strictly before
    it; a withdrawal in answer to a dispute decides it too."""
    start, end = month.start, month.end
    in_month = Q(decided_at__gte=start, decided_at__lt=end)
    open_at_end = Q(filed_at__lt=end) & (Q(decided_at__isnull=True) | Q(decided_at__gte=end))
    due_in_month = Q(due_at__gte=start, due_at__lt=end)
    met = Q(decided_at__isnull=False, decided_at__lt=F("due_at"))
    figures = Dispute.objects.aggregate(
        filed=Count("pk", filter=Q(filed_at__gte=start, filed_at__lt=end)),
        upheld=Count("pk", filter=in_month & Q(status=DisputeStatus.UPHELD)),
        rejected=Count("pk", filter=in_month & Q(status=DisputeStatus.REJECTED)),
        open_at_end=Count("pk", filter=open_at_end),
        open_past_deadline_at_end=Count("pk", filter=open_at_end & Q(due_at__lt=end)),
        deadlines_in_month=Count("pk", filter=due_in_month),
        deadline_met=Count("pk", filter=due_in_month & met),
    )
    return DisputeFigures(
        **figures,
        deadline_days=deadline_days,
        deadline_missed=figures["deadlines_in_month"] - figures["deadline_met"],
    )


def report_subject_access(*, month: ReportMonth) -> SubjectAccessFigures:
    """Subject-access requests as the audit trail records them (selectors/compliance.py: one
    event per report, with the fingerprint and what was found; from the admin or with an
    officer's key through the API)."""
    events = AuditEvent.objects.filter(
        action=AuditAction.SUBJECT_ACCESS,
        created_at__gte=month.start,
        created_at__lt=month.end,
    ).order_by()
    found = Q(details__cases__gt=0) | Q(details__lookups__gt=0) | Q(details__watches__gt=0)
    figures = events.aggregate(
        requests=Count("pk"),
        via_admin=Count("pk", filter=Q(api_key_prefix="")),
        with_records=Count("pk", filter=found),
        identifiers=Count("object_id", distinct=True),
    )
    return SubjectAccessFigures(**figures, via_api=figures["requests"] - figures["via_admin"])


def report_lookups_by_purpose(*, month: ReportMonth) -> list[PurposeRow]:
    """Every purpose (zeros included): calls, identifiers checked and identifiers matched."""
    rows = {
        row["purpose"]: row
        for row in Lookup.objects.filter(created_at__gte=month.start, created_at__lt=month.end)
        .order_by()
        .values("purpose")
        .annotate(
            calls=Count("*"),
            identifiers=Sum("identifier_count"),
            matches=Sum("match_count"),
        )
    }
    return [
        PurposeRow(
            code=code,
            calls=rows.get(code, {}).get("calls", 0),
            identifiers=rows.get(code, {}).get("identifiers") or 0,
            matches=rows.get(code, {}).get("matches") or 0,
        )
        for code in Purpose.values
    ]


def report_members(*, month: ReportMonth) -> MemberFigures:
    """Members that joined (were created) in the month, were suspended or reinstated in it
    (the audit trail's status events, by member code), and the totals at its end."""
    start, end = month.start, month.end
    status_actions = (AuditAction.MEMBER_SUSPENDED, AuditAction.MEMBER_ACTIVE)
    events = AuditEvent.objects.filter(
        action__in=status_actions, object_type="member", created_at__lt=end
    )
    changed = {
        action: sorted(
            set(
                events.filter(action=action, created_at__gte=start)
                .order_by()
                .values_list("object_id", flat=True)
            )
        )
        for action in status_actions
    }
    # Each member's status at the end: its last status event before the end.
    last_actions = (
        events.order_by("object_id", "-id").distinct("object_id").values_list("action", flat=True)
    )
    return MemberFigures(
        joined=list(
            Member.objects.filter(created_at__gte=start, created_at__lt=end)
            .order_by("code")
            .values_list("code", flat=True)
        ),
        suspended=changed[AuditAction.MEMBER_SUSPENDED],
        reinstated=changed[AuditAction.MEMBER_ACTIVE],
        members_at_end=Member.objects.filter(created_at__lt=end).count(),
        suspended_at_end=sum(1 for a in last_actions if a == AuditAction.MEMBER_SUSPENDED),
    )


def report_last_checkpoint(*, month: ReportMonth) -> CheckpointFigures | None:
    """The last audit checkpoint signed in the month (None: none was)."""
    checkpoint = (
        AuditCheckpoint.objects.filter(signed_at__gte=month.start, signed_at__lt=month.end)
        .order_by("-signed_at", "-id")
        .first()
    )
    if checkpoint is None:
        return None
    return CheckpointFigures(
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        signed_at=checkpoint.signed_at,
        key_id=checkpoint.key_id,
    )

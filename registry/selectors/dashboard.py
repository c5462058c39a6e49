"""Numbers for the compliance officers' dashboard (admin index). Aggregates only: counts per
day, per category, per member; never a case's or a lookup's content.

Each function is one or two aggregate queries over indexed time ranges; the admin caches the
result for a minute, so a busy registry pays for them once a minute, not once per page."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from registry.models import (
    UNDECIDED_DISPUTE_STATUSES,
    Case,
    Category,
    Dispute,
    DisputeStatus,
    JobRun,
    Lookup,
    Member,
)


@dataclass(frozen=True)
class DayCount:
    day: date
    lookups: int
    hits: int
    identifiers: int


@dataclass(frozen=True)
class NamedCount:
    code: str
    name: str
    count: int


@dataclass(frozen=True)
class DisputeCounts:
    undecided: int
    overdue: int
    due_soon: int  # undecided, not overdue, due within the reminder window
    decided_30d: int


@dataclass(frozen=True)
class JobHealth:
    job: str
    last_status: str  # "" when the job never ran
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    failures_24h: int
    details: dict = field(default_factory=dict)


def _since(days: int, now: datetime) -> datetime:
    start_day = timezone.localdate(now) - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(start_day, datetime.min.time()))


def lookups_per_day(*, days: int = 30, now: datetime | None = None) -> list[DayCount]:
    """Lookup calls, calls with at least one match, and identifiers checked, per local day,
    oldest first, with the empty days included."""
    now = now or timezone.now()
    start = _since(days, now)
    rows = (
        Lookup.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            lookups=Count("id"),
            hits=Count("id", filter=Q(match_count__gt=0)),
            identifiers=Sum("identifier_count"),
        )
    )
    by_day = {row["day"]: row for row in rows}
    first = timezone.localdate(start)
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        out.append(
            DayCount(day, row.get("lookups", 0), row.get("hits", 0), row.get("identifiers") or 0)
        )
    return out


def new_cases_per_category(*, days: int = 30, now: datetime | None = None) -> list[NamedCount]:
    """Every category, busiest first (categories without new cases show as zero)."""
    now = now or timezone.now()
    counts = dict(
        Case.objects.filter(created_at__gte=_since(days, now))
        .values("category_id")
        .annotate(n=Count("id"))
        .values_list("category_id", "n")
    )
    rows = [NamedCount(c.code, c.name, counts.get(c.code, 0)) for c in Category.objects.all()]
    return sorted(rows, key=lambda r: (-r.count, r.code))


def dispute_counts(*, reminder_days: int, now: datetime | None = None) -> DisputeCounts:
    now = now or timezone.now()
    undecided = Q(status__in=UNDECIDED_DISPUTE_STATUSES)
    overdue = undecided & (Q(status=DisputeStatus.OVERDUE) | Q(due_at__lte=now))
    totals = Dispute.objects.aggregate(
        undecided=Count("id", filter=undecided),
        overdue=Count("id", filter=overdue),
        due_soon=Count(
            "id", filter=undecided & ~overdue & Q(due_at__lte=now + timedelta(days=reminder_days))
        ),
        decided_30d=Count("id", filter=Q(decided_at__gte=now - timedelta(days=30))),
    )
    return DisputeCounts(**totals)


def top_members_by_lookups(
    *, days: int = 30, limit: int = 10, now: datetime | None = None
) -> list[NamedCount]:
    now = now or timezone.now()
    rows = list(
        Lookup.objects.filter(created_at__gte=_since(days, now))
        .values("member_id")
        .annotate(n=Count("id"))
        .order_by("-n", "member_id")[:limit]
    )
    members = Member.objects.in_bulk([r["member_id"] for r in rows])
    return [
        NamedCount(members[r["member_id"]].code, members[r["member_id"]].name, r["n"])
        for r in rows
        if r["member_id"] in members
    ]


def job_health(*, job_names: tuple[str, ...], now: datetime | None = None) -> list[JobHealth]:
    """Every known job (and any other that has run), with its latest run."""
    now = now or timezone.now()
    latest = {run.job: run for run in JobRun.objects.order_by("job", "-started_at").distinct("job")}
    successes = dict(
        JobRun.objects.filter(status=JobRun.Status.SUCCEEDED)
        .values("job")
        .annotate(at=Max("finished_at"))
        .values_list("job", "at")
    )
    failures = dict(
        JobRun.objects.filter(
            status=JobRun.Status.FAILED, started_at__gte=now - timedelta(hours=24)
        )
        .values("job")
        .annotate(n=Count("id"))
        .values_list("job", "n")
    )
    names = list(job_names) + sorted(set(latest) - set(job_names))
    out = []
    for name in names:
        run = latest.get(name)
        out.append(
            JobHealth(
                job=name,
                last_status=run.status if run else "",
                last_started_at=run.started_at if run else None,
                last_finished_at=run.finished_at if run else None,
                last_success_at=successes.get(name),
                failures_24h=failures.get(name, 0),
                details=run.details if run else {},
            )
        )
    return out


@dataclass(frozen=True)
class MonitoringRow:
    """One member's monitoring, in counts (never a token, a fingerprint or a label)."""

    member_id: int
    code: str
    name: str
    watches: int
    alerts_30d: int
    endpoints: int
    failing_endpoints: int
    pending_deliveries: int
    given_up_30d: int


def monitoring_per_member(*, now: datetime | None = None) -> list[MonitoringRow]:
    """Members with watches, alerts (30 days) or webhook endpoints, busiest first: a handful
    of grouped counts (live watches use the expiry index; alerts their creation index)."""
    from registry.models import Alert, Watch, WebhookDelivery, WebhookEndpoint

    now = now or timezone.now()
    since = now - timedelta(days=30)
    watches = _counts(Watch.objects.filter(expires_on__gte=timezone.localdate(now)))
    alerts = _counts(Alert.objects.filter(created_at__gte=since))
    endpoints = _counts(WebhookEndpoint.objects.all())
    failing = _counts(WebhookEndpoint.objects.filter(failing_since__isnull=False))
    pending = _counts(
        WebhookDelivery.objects.filter(delivered_at__isnull=True, gave_up_at__isnull=True),
        "endpoint__member_id",
    )
    given_up = _counts(WebhookDelivery.objects.filter(gave_up_at__gte=since), "endpoint__member_id")
    ids = set(watches) | set(alerts) | set(endpoints)
    members = Member.objects.in_bulk(list(ids))
    rows = [
        MonitoringRow(
            member_id=pk,
            code=members[pk].code,
            name=members[pk].name,
            watches=watches.get(pk, 0),
            alerts_30d=alerts.get(pk, 0),
            endpoints=endpoints.get(pk, 0),
            failing_endpoints=failing.get(pk, 0),
            pending_deliveries=pending.get(pk, 0),
            given_up_30d=given_up.get(pk, 0),
        )
        for pk in ids
        if pk in members
    ]
    return sorted(rows, key=lambda r: (-r.failing_endpoints, -r.watches, r.code))


def _counts(queryset, field: str = "member_id") -> dict[int, int]:
    return dict(queryset.order_by().values(field).annotate(n=Count("pk")).values_list(field, "n"))


def member_monitoring(*, member_id: int, now: datetime | None = None) -> dict:
    """One member's page: live watches, alerts per type in 30 days, its webhook endpoints
    with their delivery health."""
    from registry.models import Alert, Watch, WebhookDelivery, WebhookEndpoint

    now = now or timezone.now()
    since = now - timedelta(days=30)
    alerts = dict(
        Alert.objects.filter(member_id=member_id, created_at__gte=since)
        .order_by()
        .values("type")
        .annotate(n=Count("pk"))
        .values_list("type", "n")
    )
    endpoints = list(
        WebhookEndpoint.objects.filter(member_id=member_id)
        .annotate(
            pending=Count(
                "deliveries",
                filter=Q(
                    deliveries__delivered_at__isnull=True, deliveries__gave_up_at__isnull=True
                ),
            ),
            delivered_24h=Count(
                "deliveries", filter=Q(deliveries__delivered_at__gte=now - timedelta(hours=24))
            ),
        )
        .order_by("-created_at")
    )
    return {
        "watches": Watch.objects.filter(
            member_id=member_id, expires_on__gte=timezone.localdate(now)
        ).count(),
        "alerts": alerts,
        "alerts_total": sum(alerts.values()),
        "endpoints": endpoints,
        "given_up_30d": WebhookDelivery.objects.filter(
            endpoint__member_id=member_id, gave_up_at__gte=since
        ).count(),
    }

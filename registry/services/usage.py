"""The members' daily usage, rolled up from the registry's own records, and the usage signals
checked against it (selectors/usage.py says what they are). Run every hour by the
`usage_signals` job for today and yesterday, so an enumeration is flagged the day it happens;
both steps are idempotent (rows are upserted, an alert is raised once per member, signal and
day)."""

import logging
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, IntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, Dispute, Lookup, LookupLogEntry, Member, MemberDailyUsage
from registry.selectors.usage import HISTORY_DAYS, signals_of_day
from registry.services.audit import audit_record

logger = logging.getLogger(__name__)
USAGE_FIELDS = (
    "elements_evaluated",
    "identifiers_looked_up",
    "distinct_identifiers",
    "identifiers_matched",
    "disputes_filed",
)


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _per_member(queryset, member_field: str, **aggregate) -> dict[int, dict]:
    rows = queryset.values(member_field).annotate(**aggregate).order_by()
    return {row[member_field]: row for row in rows if row[member_field] is not None}


@transaction.atomic
def member_usage_rollup(*, day: date, now: datetime | None = None) -> int:
    """(Re)compute every member's usage on the local `day` from the evaluate audit events,
    the lookups, the lookup log and the disputes. Returns the rows written."""
    start, end = _bounds(day)
    evaluated = _per_member(
        AuditEvent.objects.filter(
            action=AuditAction.OPRF_EVALUATED, created_at__gte=start, created_at__lt=end
        ),
        "member_id",
        n=Sum(Cast(KeyTextTransform("elements", "details"), IntegerField())),
    )
    looked = _per_member(
        Lookup.objects.filter(created_at__gte=start, created_at__lt=end),
        "member_id",
        identifiers=Sum("identifier_count"),
        matched=Sum("match_count"),
    )
    distinct = _per_member(
        LookupLogEntry.objects.filter(created_at__gte=start, created_at__lt=end),
        "member_id",
        n=Count("digest", distinct=True),
    )
    disputes = _per_member(
        Dispute.objects.filter(filed_at__gte=start, filed_at__lt=end), "filed_by_id", n=Count("id")
    )
    members = set(evaluated) | set(looked) | set(distinct) | set(disputes)
    computed_at = now or timezone.now()
    rows = [
        MemberDailyUsage(
            member_id=member_id,
            day=day,
            elements_evaluated=evaluated.get(member_id, {}).get("n") or 0,
            identifiers_looked_up=looked.get(member_id, {}).get("identifiers") or 0,
            distinct_identifiers=distinct.get(member_id, {}).get("n") or 0,
            identifiers_matched=looked.get(member_id, {}).get("matched") or 0,
            disputes_filed=disputes.get(member_id, {}).get("n") or 0,
            computed_at=computed_at,
        )
        for member_id in sorted(members)
    ]
    MemberDailyUsage.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["member", "day"],
        update_fields=[*USAGE_FIELDS, "computed_at"],
    )
    return len(rows)


@transaction.atomic
def usage_signals_check(*, day: date) -> int:
    """Raise an alert (an audit event for the officers, and a log line) for each signal of
    each member's `day` that crosses its threshold, once per member, signal and day. Returns
    the alerts raised."""
    rows = list(
        MemberDailyUsage.objects.filter(
            day__gte=day - timedelta(days=HISTORY_DAYS), day__lte=day
        ).order_by("member_id", "day")
    )
    by_member: dict[int, list[MemberDailyUsage]] = {}
    for row in rows:
        by_member.setdefault(row.member_id, []).append(row)
    raised = 0
    for member_id, history in by_member.items():
        day_row = next((row for row in history if row.day == day), None)
        if day_row is None:
            continue
        for signal in signals_of_day(day_row, [row for row in history if row.day < day]):
            if signal.alert and _usage_alert_raise(member_id=member_id, day=day, signal=signal):
                raised += 1
    return raised


def _usage_alert_raise(*, member_id: int, day: date, signal) -> bool:
    member = Member.objects.get(pk=member_id)
    already = AuditEvent.objects.filter(
        action=AuditAction.USAGE_SIGNAL_ALERT,
        object_id=member.code,
        details__signal=signal.name,
        details__day=day.isoformat(),
    ).exists()
    if already:
        return False
    details = {
        "member_id": member_id,
        "signal": signal.name,
        "day": day.isoformat(),
        "value": round(signal.value, 4),
        "median": round(signal.median, 4),
        "threshold": round(signal.threshold, 4),
    }
    audit_record(
        actor=Actor.system(),
        action=AuditAction.USAGE_SIGNAL_ALERT,
        object_type="member",
        object_id=member.code,
        details=details,
    )
    logger.warning("usage signal alert", extra={"member": member.code, **details})
    return True


def usage_signals_run(
    *, now: datetime | None = None, batch_size: int | None = None, max_batches: int | None = None
) -> dict:
    """The hourly job: roll up yesterday (now complete) and today so far, then check both."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    summary = {"rows": 0, "alerts": 0}
    for day in (today - timedelta(days=1), today):
        summary["rows"] += member_usage_rollup(day=day, now=now)
        summary["alerts"] += usage_signals_check(day=day)
    return summary

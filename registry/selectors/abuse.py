"""Who has been throttled (services/abuse.py), for the officers' view in the admin."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min
from django.utils import timezone

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, Lookup, Member, QuotaCounter

USUAL_VOLUME_DAYS = 28


@dataclass(frozen=True)
class ThrottledMember:
    member: Member
    scopes: list[str]
    windows_refused: int  # minute or day windows in which calls were refused
    first_refused_at: datetime
    last_refused_at: datetime
    usual_lookups_per_day: float  # over the USUAL_VOLUME_DAYS before `since`


def throttled_members(*, actor: Actor, since: datetime) -> list[ThrottledMember]:
    """Members refused by their rate limit or quota since `since`, most refused first.
    An officer sees every member; a member only itself."""
    events = AuditEvent.objects.filter(
        action=AuditAction.RATE_LIMIT_EXCEEDED, created_at__gte=since
    )
    if not actor.is_officer:
        events = events.filter(member_id=actor.member_id)
    rows = list(
        events.values("member_id")
        .annotate(windows=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by("-windows", "member_id")
    )
    members = Member.objects.in_bulk([row["member_id"] for row in rows])
    return [
        ThrottledMember(
            member=members[row["member_id"]],
            scopes=_scopes(events, row["member_id"]),
            windows_refused=row["windows"],
            first_refused_at=row["first"],
            last_refused_at=row["last"],
            usual_lookups_per_day=_usual_lookups_per_day(row["member_id"], row["first"]),
        )
        for row in rows
        if row["member_id"] in members
    ]


def _scopes(events, member_id: int) -> list[str]:
    details = events.filter(member_id=member_id).values_list("details", flat=True)
    return sorted({d.get("scope", "") for d in details if isinstance(d, dict)} - {""})


def _usual_lookups_per_day(member_id: int, first_refused_at: datetime) -> float:
    """The member's lookups a day over the USUAL_VOLUME_DAYS whole days before the day it was
    first refused (not before the panel's window: a member throttled on its busiest days
    would otherwise show a usual volume of 0)."""
    end = timezone.localtime(first_refused_at).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=USUAL_VOLUME_DAYS)
    count = Lookup.objects.filter(
        member_id=member_id, created_at__gte=start, created_at__lt=end
    ).count()
    return round(count / USUAL_VOLUME_DAYS, 1)


def _refusals_visible_to(actor: Actor, since: datetime):
    """The refusal events since `since` that `actor` may see: an officer every member's, a
    member only its own, anyone else none."""
    events = AuditEvent.objects.filter(
        action=AuditAction.RATE_LIMIT_EXCEEDED, created_at__gte=since
    )
    if actor.is_officer:
        return events
    if actor.is_member:
        return events.filter(member_id=actor.member_id)
    return events.none()


def refused_windows(*, actor: Actor, since: datetime) -> dict[int, dict[str, int]]:
    """Per member id, how many "minute" and "day" windows were refused since `since` (one
    event is written per refused window, see services/abuse.py). One grouped query."""
    rows = (
        _refusals_visible_to(actor, since)
        .values("member_id", "details__window")
        .annotate(n=Count("id"))
        .order_by()
    )
    out: dict[int, dict[str, int]] = {}
    for row in rows:
        window = row["details__window"] if isinstance(row["details__window"], str) else ""
        by_window = out.setdefault(row["member_id"], {})
        by_window[window] = by_window.get(window, 0) + row["n"]
    return out


def last_refused_at(*, actor: Actor, member_id: int, since: datetime) -> datetime | None:
    """When `member_id` was last refused since `since`, or None (also when `actor` may not
    see that member)."""
    return (
        _refusals_visible_to(actor, since)
        .filter(member_id=member_id)
        .aggregate(last=Max("created_at"))["last"]
    )


def limiter_fallback_last_used() -> datetime | None:
    """When limits were last counted in PostgreSQL because the shared limiter (Redis) was
    unreachable (services/quotas.py), or None. Not scoped to a member: it is an operational
    fact for officers, and says nothing about any member's use."""
    return QuotaCounter.objects.aggregate(last=Max("updated_at"))["last"]

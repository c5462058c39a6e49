"""Usage signals: a member's day against its own 30-day median, for the officers. Below the
limits, an enumeration still shows: many more identifiers than usual, far more evaluated
elements than looked-up identifiers (tokens harvested for use elsewhere), a match rate that
collapses (a sweep of numbers nobody reported) or jumps (a list of known frauds being
checked), a burst of disputes.

The registry cannot count DISTINCT identifiers evaluated: blinding makes every evaluated
element look random, which is the point of the OPRF. It counts the elements evaluated, and the
distinct identifiers looked up (lookup log digests).

The days come from `MemberDailyUsage` (services/usage.py rolls them up every hour)."""

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, MemberDailyUsage

HISTORY_DAYS = 30


@dataclass(frozen=True)
class SignalKind:
    name: str
    label: str
    floor: float  # below this a day is too small to alert on, whatever the median
    two_sided: bool = False  # also alert when far BELOW the median


SIGNALS = (
    SignalKind("distinct_identifiers", _("Distinct identifiers looked up"), 500),
    SignalKind("elements_evaluated", _("Elements evaluated"), 500),
    SignalKind("evaluate_lookup_ratio", _("Evaluated elements per looked-up identifier"), 3.0),
    SignalKind("match_rate", _("Match rate of looked-up identifiers"), 0.0, two_sided=True),
    SignalKind("disputes_filed", _("Disputes filed"), 5),
)
SIGNAL_LABELS = {kind.name: kind.label for kind in SIGNALS}
# The match rate of a day with fewer identifiers than this says nothing.
MATCH_RATE_MIN_IDENTIFIERS = 500


@dataclass(frozen=True)
class Signal:
    name: str
    label: str
    value: float | None  # None: not measurable that day (e.g. a match rate without lookups)
    median: float
    threshold: float  # the value at or above which it alerts
    low_threshold: float | None  # two-sided signals: at or below which it alerts
    history_days: int
    alert: bool


def _values(row: MemberDailyUsage | None) -> dict[str, float | None]:
    if row is None:
        return {kind.name: 0 for kind in SIGNALS} | {"match_rate": None}
    looked = row.identifiers_looked_up
    return {
        "distinct_identifiers": row.distinct_identifiers,
        "elements_evaluated": row.elements_evaluated,
        "evaluate_lookup_ratio": row.elements_evaluated / max(looked, 1),
        "match_rate": row.identifiers_matched / looked if looked else None,
        "disputes_filed": row.disputes_filed,
    }


def signals_of_day(day_row: MemberDailyUsage | None, history: list[MemberDailyUsage]) -> list:
    """The signals of one member's day against `history` (its rows of the HISTORY_DAYS
    before). Days without a row since the member's first one count as idle days (zero).
    No alert before REGISTRY_SIGNAL_MIN_HISTORY_DAYS of history."""
    factor = settings.REGISTRY_SIGNAL_FACTOR
    days = _history_days(history, day_row.day if day_row else None)
    today = _values(day_row)
    past = [_values(row) for row in days]
    out = []
    for kind in SIGNALS:
        series = [v[kind.name] for v in past if v[kind.name] is not None]
        median = statistics.median(series) if series else 0.0
        threshold = max(median * factor, kind.floor)
        low = median / factor if kind.two_sided and median > 0 else None
        value = today[kind.name]
        enough = len(days) >= settings.REGISTRY_SIGNAL_MIN_HISTORY_DAYS and series
        if kind.name == "match_rate" and _looked(day_row) < MATCH_RATE_MIN_IDENTIFIERS:
            enough = False
        alert = bool(
            enough
            and value is not None
            and (value >= threshold or (low is not None and value <= low))
        )
        out.append(
            Signal(kind.name, str(kind.label), value, median, threshold, low, len(days), alert)
        )
    return out


def _looked(row: MemberDailyUsage | None) -> int:
    return row.identifiers_looked_up if row is not None else 0


def _history_days(history: list[MemberDailyUsage], day: date | None) -> list:
    """One entry per day from the member's first row (within the window) to the day before
    `day`: the row, or None for an idle day."""
    if not history or day is None:
        return list(history)
    by_day = {row.day: row for row in history if row.day < day}
    if not by_day:
        return []
    first = max(min(by_day), day - timedelta(days=HISTORY_DAYS))
    return [by_day.get(first + timedelta(days=n)) for n in range((day - first).days)]


def member_signals(*, actor: Actor, member_id: int, day: date) -> list[Signal]:
    """The member's signals on `day` (officers only; nobody else gets any)."""
    if not actor.is_officer:
        return []
    rows = list(
        MemberDailyUsage.objects.filter(
            member_id=member_id, day__gte=day - timedelta(days=HISTORY_DAYS), day__lte=day
        ).order_by("day")
    )
    day_row = next((row for row in rows if row.day == day), None)
    if day_row is None:
        day_row = MemberDailyUsage(member_id=member_id, day=day)
    return signals_of_day(day_row, [row for row in rows if row.day < day])


@dataclass(frozen=True)
class UsageAlert:
    member_code: str
    member_id: int | None
    signal: str
    label: str
    day: str
    value: float
    median: float
    raised_at: datetime


def usage_alerts(
    *, actor: Actor, since: datetime, member_code: str | None = None
) -> list[UsageAlert]:
    """Alerts raised since `since` (of one member, if given), newest first. Officers only."""
    if not actor.is_officer:
        return []
    events = AuditEvent.objects.filter(
        action=AuditAction.USAGE_SIGNAL_ALERT, created_at__gte=since
    ).order_by("-created_at")
    if member_code is not None:
        events = events.filter(object_id=member_code)
    return [
        UsageAlert(
            member_code=event.object_id,
            member_id=event.details.get("member_id"),
            signal=event.details.get("signal", ""),
            label=str(SIGNAL_LABELS.get(event.details.get("signal", ""), "")),
            day=event.details.get("day", ""),
            value=event.details.get("value", 0),
            median=event.details.get("median", 0),
            raised_at=event.created_at,
        )
        for event in events[:200]
    ]

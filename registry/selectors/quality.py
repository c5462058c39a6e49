"""Member quality, for the officers (issue 19): how well each member reports, over the last 90
days and the last 12 months, beside the consortium's median, and which members are past the
configured thresholds (REGISTRY_QUALITY_* in settings.py) and so flagged for review.

Per member and window (a window is whole local days: the last 90, or 365, including today):

- cases reported: its cases created in the window;
- share withdrawn: of those, the share it has withdrawn since;
- disputes: disputes about its cases filed in the window;
- share upheld: of those decided, the share upheld (a case withdrawn in response counts, as
  the dispute is then upheld);
- median days to respond: from filing to the member's response, over the disputes it answered;
- overdue disputes: disputes whose deadline passed without a response (unanswered when it
  passed, or answered after it), whatever happened next;
- lookups per case: identifiers it looked up in the window per case it reported (the usage
  roll-up, MemberDailyUsage, as of its last hourly run; None without a case).

Three aggregate statements, each planned on an index at 10M identifiers / 10M lookup-log rows
(EXPLAIN in docs/operations.md, "Member quality"): the cases per member by a lateral index-only
scan of case_member_newest plus the small partial index case_member_withdrawn; the disputes (a
small table) joined to their cases by primary key; the usage roll-up (a row per member and
day), not the lookups themselves, which would mean counting millions of rows per member.
Counts only: never a case's content. Officers only."""

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.actors import Actor
from registry.errors import NotFound


@dataclass(frozen=True)
class Window:
    key: str
    days: int
    label: str
    first_day: date
    start: datetime  # local midnight of first_day


WINDOW_DAYS = (("90d", 90, gettext_lazy("90 days")), ("12m", 365, gettext_lazy("12 months")))


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str  # "count", "share", "days", "ratio"
    higher_is_worse: bool = True


METRICS = (
    Metric("cases_reported", gettext_lazy("Cases reported"), "count", higher_is_worse=False),
    Metric("withdrawn_share", gettext_lazy("Share withdrawn"), "share"),
    Metric("disputes", gettext_lazy("Disputes against its cases"), "count"),
    Metric("upheld_share", gettext_lazy("Share of decided disputes upheld"), "share"),
    Metric("median_response_days", gettext_lazy("Median days to respond to a dispute"), "days"),
    Metric("overdue_disputes", gettext_lazy("Overdue disputes"), "count"),
    Metric(
        "lookups_per_case",
        gettext_lazy("Identifiers looked up per case reported"),
        "ratio",
        higher_is_worse=False,
    ),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


@dataclass(frozen=True)
class QualityFigures:
    """One member's figures over one window."""

    cases_reported: int = 0
    cases_withdrawn: int = 0
    disputes: int = 0
    disputes_decided: int = 0
    disputes_upheld: int = 0
    responses: int = 0
    median_response_days: float | None = None
    overdue_disputes: int = 0
    identifiers_looked_up: int = 0

    @property
    def withdrawn_share(self) -> float | None:
        return self.cases_withdrawn / self.cases_reported if self.cases_reported else None

    @property
    def upheld_share(self) -> float | None:
        return self.disputes_upheld / self.disputes_decided if self.disputes_decided else None

    @property
    def lookups_per_case(self) -> float | None:
        return self.identifiers_looked_up / self.cases_reported if self.cases_reported else None

    def value(self, metric: str):
        return getattr(self, metric)


@dataclass(frozen=True)
class Flag:
    """A threshold a member is past: `metric` over `window` is `value`, above `limit`."""

    window: str
    metric: str
    value: float
    limit: float


@dataclass(frozen=True)
class MemberQuality:
    member_id: int
    code: str
    name: str
    status: str
    figures: dict[str, QualityFigures]  # by window key
    flags: tuple[Flag, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class QualityReport:
    computed_at: datetime
    windows: tuple[Window, ...]
    members: list[MemberQuality]
    medians: dict[str, dict[str, float | None]]  # window key -> metric -> consortium median
    thresholds: dict[str, float] = field(default_factory=dict)

    def member(self, member_id: int) -> MemberQuality | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    @property
    def flagged(self) -> list[MemberQuality]:
        return [m for m in self.members if m.flagged]


def quality_windows(now: datetime) -> tuple[Window, ...]:
    today = timezone.localdate(now)
    out = []
    for key, days, label in WINDOW_DAYS:
        first = today - timedelta(days=days - 1)
        start = timezone.make_aware(datetime.combine(first, time.min))
        out.append(Window(key, days, str(label), first, start))
    return tuple(out)


def quality_thresholds() -> dict[str, float]:
    return {
        "withdrawn_share": settings.REGISTRY_QUALITY_MAX_WITHDRAWN_SHARE,
        "upheld_share": settings.REGISTRY_QUALITY_MAX_UPHELD_SHARE,
        "median_response_days": settings.REGISTRY_QUALITY_MAX_MEDIAN_RESPONSE_DAYS,
        "overdue_disputes": settings.REGISTRY_QUALITY_MAX_OVERDUE_DISPUTES,
    }


def quality_flags(figures: dict[str, QualityFigures], thresholds: dict[str, float]) -> tuple:
    """The thresholds a member's figures are past, window by window. A share is judged only
    from REGISTRY_QUALITY_MIN_CASES cases (withdrawn) or REGISTRY_QUALITY_MIN_DISPUTES
    decided disputes (upheld): one case withdrawn out of two says little."""
    flags = []
    for window, fig in figures.items():
        judged = {
            "withdrawn_share": fig.cases_reported >= settings.REGISTRY_QUALITY_MIN_CASES,
            "upheld_share": fig.disputes_decided >= settings.REGISTRY_QUALITY_MIN_DISPUTES,
            "median_response_days": True,
            "overdue_disputes": True,
        }
        for metric, limit in thresholds.items():
            value = fig.value(metric)
            if judged[metric] and value is not None and value > limit:
                flags.append(Flag(window, metric, value, limit))
    return tuple(flags)


# The cases of each member in the longer window, counted per window: an index-only scan of
# case_member_newest (member_id, created_at) per member, and of the partial index
# case_member_withdrawn for the withdrawn ones.
CASES_SQL = """
SELECT m.id, m.code, m.name, m.status, c.short, c.long, w.short, w.long
FROM registry_member m
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE created_at >= %(short)s) AS short, count(*) AS long
    FROM registry_case
    WHERE member_id = m.id AND created_at >= %(long)s AND created_at <= %(now)s
) c
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE created_at >= %(short)s) AS short, count(*) AS long
    FROM registry_case
    WHERE member_id = m.id AND status = 'withdrawn'
      AND created_at >= %(long)s AND created_at <= %(now)s
) w
ORDER BY m.code
"""

# The disputes filed in the longer window about each member's cases, per window. Disputes are
# few (a fraction of a percent of cases); each is joined to its case by primary key.
_DISPUTE_FIGURES = """
    count(*) FILTER (WHERE {w}),
    count(*) FILTER (WHERE {w} AND d.status IN ('upheld', 'rejected')),
    count(*) FILTER (WHERE {w} AND d.status = 'upheld'),
    count(d.responded_at) FILTER (WHERE {w}),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.responded_at - d.filed_at))
        FILTER (WHERE {w} AND d.responded_at IS NOT NULL) / 86400.0,
    count(*) FILTER (
        WHERE {w} AND ((d.responded_at IS NULL AND d.due_at <= coalesce(d.decided_at, %(now)s))
                       OR d.responded_at > d.due_at)
    )"""
# Only the code's own fragments are formatted in; values are parameters.
DISPUTES_SQL = f"""
SELECT c.member_id,
    {_DISPUTE_FIGURES.format(w="d.filed_at >= %(short)s")},
    {_DISPUTE_FIGURES.format(w="true")}
FROM registry_dispute d
JOIN registry_case c ON c.id = d.case_id
WHERE d.filed_at >= %(long)s AND d.filed_at <= %(now)s
GROUP BY c.member_id
"""  # noqa: S608
DISPUTE_FIELDS = (
    "disputes",
    "disputes_decided",
    "disputes_upheld",
    "responses",
    "median_response_days",
    "overdue_disputes",
)

# Identifiers looked up, from the hourly usage roll-up (one row per member and local day).
USAGE_SQL = """
SELECT member_id,
    coalesce(sum(identifiers_looked_up) FILTER (WHERE day >= %(short_day)s), 0),
    coalesce(sum(identifiers_looked_up), 0)
FROM registry_memberdailyusage
WHERE day >= %(long_day)s AND day <= %(today)s
GROUP BY member_id
"""


def _query(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def member_quality_report(*, actor: Actor, now: datetime | None = None) -> QualityReport:
    """Every member's figures over both windows, the consortium medians and the flags."""
    if not actor.is_officer:
        raise NotFound(_("No such resource."))
    now = now or timezone.now()
    short, long = quality_windows(now)
    params = {
        "short": short.start,
        "long": long.start,
        "now": now,
        "short_day": short.first_day,
        "long_day": long.first_day,
        "today": timezone.localdate(now),
    }
    figures: dict[int, dict[str, dict]] = {}
    members = []
    for pk, code, name, status, c_short, c_long, w_short, w_long in _query(CASES_SQL, params):
        members.append((pk, code, name, status))
        figures[pk] = {
            short.key: {"cases_reported": c_short, "cases_withdrawn": w_short},
            long.key: {"cases_reported": c_long, "cases_withdrawn": w_long},
        }
    size = len(DISPUTE_FIELDS)
    for member_id, *values in _query(DISPUTES_SQL, params):
        if member_id not in figures:
            continue
        for window, part in ((short, values[:size]), (long, values[size:])):
            found = dict(zip(DISPUTE_FIELDS, part, strict=True))
            median = found["median_response_days"]
            found["median_response_days"] = float(median) if median is not None else None
            figures[member_id][window.key].update(found)
    for member_id, in_short, in_long in _query(USAGE_SQL, params):
        if member_id in figures:
            figures[member_id][short.key]["identifiers_looked_up"] = int(in_short)
            figures[member_id][long.key]["identifiers_looked_up"] = int(in_long)
    thresholds = quality_thresholds()
    rows = []
    for pk, code, name, status in members:
        by_window = {key: QualityFigures(**values) for key, values in figures[pk].items()}
        rows.append(
            MemberQuality(pk, code, name, status, by_window, quality_flags(by_window, thresholds))
        )
    return QualityReport(
        computed_at=now,
        windows=(short, long),
        members=rows,
        medians={w.key: consortium_medians(rows, w.key) for w in (short, long)},
        thresholds=thresholds,
    )


def consortium_medians(rows: list[MemberQuality], window: str) -> dict[str, float | None]:
    """Each metric's median over the members it is defined for (a share needs a case or a
    decided dispute, a response time a response; counts include every member's zero)."""
    out = {}
    for metric in METRIC_NAMES:
        values = [r.figures[window].value(metric) for r in rows]
        values = [v for v in values if v is not None]
        out[metric] = statistics.median(values) if values else None
    return out

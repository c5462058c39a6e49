"""The dashboard on the admin index: charts drawn on the server (inline SVG and CSS bars, no
JavaScript, nothing fetched from elsewhere), so they render the same in any browser and
under the strict Content-Security-Policy.

The numbers come from registry/selectors/dashboard.py (and, for the members refused by their
rate limit or quota, registry/selectors/abuse.py) and are cached for a minute."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.admin.common import actor_for, category_label, job_label, scope_labels
from registry.audit_actions import AuditAction
from registry.selectors import dashboard as numbers
from registry.selectors.abuse import (
    ThrottledMember,
    limiter_fallback_last_used,
    refused_windows,
    throttled_members,
)
from registry.selectors.usage import usage_alerts
from registry.services.audit import audit_checkpoint_latest, audit_seal_lag_seconds
from registry.services.partitions import partitions_months_ahead

logger = logging.getLogger(__name__)
CACHE_KEY = "admin:dashboard:v5"  # v5: monitoring (watches, alerts, webhook endpoints)
CACHE_SECONDS = 60
DAYS = 30
THROTTLED_DAYS = 7
THROTTLED_RECENT = timedelta(hours=24)  # rows this fresh are highlighted
LIMITER_FALLBACK_RECENT = timedelta(hours=24)  # the limiter tile is an alarm this long

# Daily chart geometry (SVG user units; the SVG scales to the page width).
WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class HBar:
    label: str
    title: str
    value: int
    percent: float


def nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above `value` (at least 1), for a readable axis."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def daily_chart(days: list[numbers.DayCount]) -> dict:
    top = nice_ceiling(max((d.lookups for d in days), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)

    def scaled(value: int) -> float:
        return plot_h * value / top

    lookups, hits, ticks = [], [], []
    for index, day in enumerate(days):
        x = LEFT + index * slot
        label = date_format(day.day, "SHORT_DATE_FORMAT")
        lh, hh = scaled(day.lookups), scaled(day.hits)
        lookups.append(
            Bar(
                x + slot * 0.1,
                TOP + plot_h - lh,
                slot * 0.8,
                lh,
                _("%(day)s: %(count)d lookups") % {"day": label, "count": day.lookups},
            )
        )
        hits.append(
            Bar(
                x + slot * 0.25,
                TOP + plot_h - hh,
                slot * 0.5,
                hh,
                _("%(day)s: %(count)d with a hit") % {"day": label, "count": day.hits},
            )
        )
        # A label a week, counted back from today so that today always has one.
        if (len(days) - 1 - index) % 7 == 0:
            ticks.append(Tick(x + slot / 2, f"{day.day:%m-%d}"))
    grid = [Tick(TOP + plot_h - plot_h * f, f"{round(top * f):,}") for f in (0, 0.5, 1)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "baseline": TOP + plot_h,
        "label_y": HEIGHT - 8,
        "lookups": lookups,
        "hits": hits,
        "ticks": ticks,
        "grid": grid,
        "total_lookups": sum(d.lookups for d in days),
        "total_hits": sum(d.hits for d in days),
        "total_identifiers": sum(d.identifiers for d in days),
        "hit_rate": (100 * sum(d.hits for d in days) / max(sum(d.lookups for d in days), 1)),
    }


def horizontal_bars(rows: list[numbers.NamedCount], *, label_is_code: bool) -> list[HBar]:
    top = max((r.count for r in rows), default=0) or 1
    return [
        HBar(
            label=r.code if label_is_code else category_label(r.code, r.name),
            title=r.name if label_is_code else r.code,
            value=r.count,
            percent=round(100 * r.count / top, 1),
        )
        for r in rows
    ]


def _numbers(actor: Actor) -> dict:
    """Cached for every officer alike: what the dashboard shows is the same for all of them
    (the throttled members are every member's, which any officer may see)."""
    from registry.services.jobs import JOB_NAMES

    try:
        cached = cache.get(CACHE_KEY)
    except Exception:  # Redis down: the dashboard must still show it (and the fallback)
        logger.warning("dashboard cache unavailable", exc_info=True)
        cached = None
    if cached is not None:
        return cached
    now = timezone.now()
    throttled_since = now - timedelta(days=THROTTLED_DAYS)
    data = {
        "days": numbers.lookups_per_day(days=DAYS, now=now),
        "categories": numbers.new_cases_per_category(days=DAYS, now=now),
        "disputes": numbers.dispute_counts(
            reminder_days=settings.REGISTRY_DISPUTE_REMINDER_DAYS, now=now
        ),
        "members": numbers.top_members_by_lookups(days=DAYS, limit=10, now=now),
        "jobs": numbers.job_health(job_names=tuple(JOB_NAMES), now=now),
        "seal_lag": audit_seal_lag_seconds(),
        "partition_months_ahead": partitions_months_ahead(now=now),
        "checkpoint": audit_checkpoint_latest(),
        "throttled": throttled_members(actor=actor, since=throttled_since),
        "throttled_windows": refused_windows(actor=actor, since=throttled_since),
        "limiter_fallback_at": limiter_fallback_last_used(),
        "usage_alerts": usage_alerts(actor=actor, since=throttled_since),
        "monitoring": numbers.monitoring_per_member(now=now),
        "computed_at": now,
    }
    try:
        cache.set(CACHE_KEY, data, CACHE_SECONDS)
    except Exception:
        logger.warning("dashboard cache unavailable", exc_info=True)
    return data


def job_rows(jobs: list[numbers.JobHealth]) -> list[dict]:
    changelist = reverse("admin:registry_jobrun_changelist")
    rows = []
    for job in jobs:
        if not job.last_status:
            state, label = "never", _("never run")
        elif job.last_status == "failed":
            state, label = "failed", _("failed")
        elif job.last_status == "running":
            state, label = "running", _("running")
        else:
            state, label = "ok", _("succeeded")
        rows.append(
            {
                "job": job.job,
                "job_label": job_label(job.job),
                "state": state,
                "label": label,
                "started_at": job.last_started_at,
                "success_at": job.last_success_at,
                "failures": job.failures_24h,
                "error": job.details.get("error", "") if job.last_status == "failed" else "",
                "url": f"{changelist}?job={job.job}",
            }
        )
    return rows


def checkpoint_tile(checkpoint, *, now: datetime) -> dict:
    """The newest signed checkpoint of the audit chain, for officers to keep a copy outside
    the database; alarmed when the sealer has not signed one for two intervals."""
    overdue = timedelta(seconds=2 * settings.REGISTRY_AUDIT_CHECKPOINT_SECONDS)
    return {
        "checkpoint": checkpoint,
        "alarm": checkpoint is None or checkpoint.signed_at < now - overdue,
        "url": reverse("admin:registry_auditevent_checkpoint"),
    }


def refusals_url(member_id: int | None = None) -> str:
    """The audit list filtered to the rate-limit refusals (of one member, if given)."""
    params = {"action": AuditAction.RATE_LIMIT_EXCEEDED.value}
    if member_id is not None:
        params["member__id__exact"] = member_id
    return f"{reverse('admin:registry_auditevent_changelist')}?{urlencode(params)}"


def throttled_rows(
    throttled: list[ThrottledMember], windows: dict[int, dict[str, int]], *, now: datetime
) -> list[dict]:
    """One row per throttled member; those refused in the last 24 h first, highlighted."""
    rows = []
    for item in throttled:
        member = item.member
        refused = windows.get(member.pk, {})
        rows.append(
            {
                "code": member.code,
                "name": member.name,
                "scopes": scope_labels(item.scopes),
                "minute_windows": refused.get("minute", 0),
                "day_windows": refused.get("day", 0),
                "first_at": item.first_refused_at,
                "last_at": item.last_refused_at,
                "usual_per_day": item.usual_lookups_per_day,
                "recent": item.last_refused_at >= now - THROTTLED_RECENT,
                "member_url": reverse("admin:registry_member_change", args=[member.pk]),
                "refusals_url": refusals_url(member.pk),
            }
        )
    return sorted(rows, key=lambda row: not row["recent"])  # stable: keeps "most refused first"


def usage_alert_rows(alerts, *, now: datetime) -> list[dict]:
    """One row per usage alert (selectors/usage.py), newest first; last 24 h highlighted."""
    return [
        {
            "alert": alert,
            "recent": alert.raised_at >= now - THROTTLED_RECENT,
            "member_url": (
                reverse("admin:registry_member_change", args=[alert.member_id])
                if alert.member_id
                else ""
            ),
        }
        for alert in alerts
    ]


def monitoring_rows(rows: list[numbers.MonitoringRow]) -> list[dict]:
    return [
        {
            "row": row,
            "member_url": reverse("admin:registry_member_change", args=[row.member_id]),
        }
        for row in rows
    ]


def dashboard_context(request) -> dict:
    if not request.user.has_perm("registry.view_case"):
        return {}
    from registry.admin.quality import quality_tile

    data = _numbers(actor_for(request))
    disputes_url = reverse("admin:registry_dispute_changelist")
    lag = data["seal_lag"]
    throttled = throttled_rows(
        data["throttled"], data["throttled_windows"], now=data["computed_at"]
    )
    return {
        "dashboard": {
            "days": DAYS,
            "daily": daily_chart(data["days"]),
            "categories": horizontal_bars(data["categories"], label_is_code=False),
            "members": horizontal_bars(data["members"], label_is_code=True),
            "disputes": data["disputes"],
            "disputes_url": disputes_url,
            "jobs": job_rows(data["jobs"]),
            "seal_lag_seconds": round(lag),
            "seal_alarm": lag > settings.REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS,
            "partition_months_ahead": data["partition_months_ahead"],
            "partition_alarm": data["partition_months_ahead"] < 1,
            "checkpoint": checkpoint_tile(data["checkpoint"], now=data["computed_at"]),
            "throttled_days": THROTTLED_DAYS,
            "throttled": throttled,
            "throttled_recent": sum(1 for row in throttled if row["recent"]),
            "throttled_url": refusals_url(),
            "usage_alerts": usage_alert_rows(data["usage_alerts"], now=data["computed_at"]),
            "monitoring": monitoring_rows(data["monitoring"]),
            "failing_endpoints": sum(r.failing_endpoints for r in data["monitoring"]),
            "watches_total": sum(r.watches for r in data["monitoring"]),
            "alerts_total": sum(r.alerts_30d for r in data["monitoring"]),
            "limiter_fallback_at": data["limiter_fallback_at"],
            "limiter_fallback_alarm": bool(
                data["limiter_fallback_at"]
                and data["limiter_fallback_at"] >= data["computed_at"] - LIMITER_FALLBACK_RECENT
            ),
            "quality": quality_tile(request),
            "computed_at": data["computed_at"],
            "next_refresh": data["computed_at"] + timedelta(seconds=CACHE_SECONDS),
        }
    }

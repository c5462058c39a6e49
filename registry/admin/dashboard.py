"""The dashboard on the admin index: charts drawn on the server (inline SVG and CSS bars, no
JavaScript, nothing fetched from elsewhere), so they render the same in any browser and
under the strict Content-Security-Policy.

The numbers come from registry/selectors/dashboard.py and are cached for a minute."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from registry.admin.common import category_label
from registry.selectors import dashboard as numbers
from registry.services.audit import audit_seal_lag_seconds

CACHE_KEY = "admin:dashboard:v1"
CACHE_SECONDS = 60
DAYS = 30

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


def _numbers() -> dict:
    from registry.services.jobs import JOB_NAMES

    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    now = timezone.now()
    data = {
        "days": numbers.lookups_per_day(days=DAYS, now=now),
        "categories": numbers.new_cases_per_category(days=DAYS, now=now),
        "disputes": numbers.dispute_counts(
            reminder_days=settings.REGISTRY_DISPUTE_REMINDER_DAYS, now=now
        ),
        "members": numbers.top_members_by_lookups(days=DAYS, limit=10, now=now),
        "jobs": numbers.job_health(job_names=tuple(JOB_NAMES), now=now),
        "seal_lag": audit_seal_lag_seconds(),
        "computed_at": now,
    }
    cache.set(CACHE_KEY, data, CACHE_SECONDS)
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


def dashboard_context(request) -> dict:
    if not request.user.has_perm("registry.view_case"):
        return {}
    data = _numbers()
    disputes_url = reverse("admin:registry_dispute_changelist")
    lag = data["seal_lag"]
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
            "computed_at": data["computed_at"],
            "next_refresh": data["computed_at"] + timedelta(seconds=CACHE_SECONDS),
        }
    }

"""Member quality in the admin: the league table (every member, sortable by each metric, one
window at a time), the panel on a member's page, the flag on the member list and the dashboard
tile. The figures come from registry/selectors/quality.py and are cached for a minute, like the
dashboard's."""

import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from registry.admin.common import actor_for
from registry.selectors.quality import (
    METRICS,
    Flag,
    MemberQuality,
    QualityReport,
    member_quality_report,
)

logger = logging.getLogger(__name__)
CACHE_KEY = "admin:quality:v1"
CACHE_SECONDS = 60
METRIC_BY_NAME = {m.name: m for m in METRICS}


def may_view_quality(user) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm("registry.view_member"))


def quality_report(request) -> QualityReport:
    """The report, cached for every officer alike (it is the same for all of them)."""
    try:
        cached = cache.get(CACHE_KEY)
    except Exception:  # Redis down: compute it
        logger.warning("quality cache unavailable", exc_info=True)
        cached = None
    if cached is not None:
        return cached
    report = member_quality_report(actor=actor_for(request))
    try:
        cache.set(CACHE_KEY, report, CACHE_SECONDS)
    except Exception:
        logger.warning("quality cache unavailable", exc_info=True)
    return report


# --- Words and numbers ------------------------------------------------------------------------


def shown(metric: str, value) -> str:
    """A metric's value as an officer reads it: a share in per cent, days and ratios with one
    decimal, counts as they are; "—" when it is not defined (no case, no decided dispute)."""
    if value is None:
        return "—"
    kind = METRIC_BY_NAME[metric].kind
    if kind == "share":
        return f"{number_format(100 * value, 1)}%"
    if kind in ("days", "ratio"):
        return number_format(value, 1)
    return number_format(value, 0, force_grouping=True)


def window_label(report: QualityReport, key: str) -> str:
    return next(w.label for w in report.windows if w.key == key)


def flag_reason(report: QualityReport, flag: Flag) -> str:
    """Why a member is flagged, in the officer's language."""
    return _("%(window)s: %(metric)s is %(value)s, above the limit of %(limit)s") % {
        "window": window_label(report, flag.window),
        "metric": METRIC_BY_NAME[flag.metric].label,
        "value": shown(flag.metric, flag.value),
        "limit": shown(flag.metric, flag.limit),
    }


def flag_reasons(report: QualityReport, member: MemberQuality) -> list[str]:
    return [flag_reason(report, flag) for flag in member.flags]


def flag_pill(report: QualityReport, member: MemberQuality | None) -> str:
    if member is None or not member.flagged:
        return ""
    return format_html(
        '<a class="registry-pill registry-pill-overdue registry-quality-flag" title="{}" '
        'href="{}">{}</a>',
        "；".join(flag_reasons(report, member)),
        league_url(flagged=True),
        _("review"),
    )


def league_url(*, window: str = "", order: str = "", flagged: bool = False) -> str:
    params = {k: v for k, v in (("window", window), ("o", order)) if v}
    if flagged:
        params["flagged"] = "1"
    url = reverse("admin:registry_member_quality")
    return f"{url}?{urlencode(params)}" if params else url


# --- The member's page, the member list and the dashboard ------------------------------------


def member_quality_context(request, member_id: int) -> dict:
    """The panel on a member's page: each metric over both windows beside the consortium
    median, and why the member is flagged, if it is."""
    if not may_view_quality(request.user):
        return {}
    report = quality_report(request)
    member = report.member(member_id)
    if member is None:
        return {}
    rows = []
    for metric in METRICS:
        rows.append(
            {
                "name": metric.name,
                "label": metric.label,
                "cells": [
                    {
                        "value": shown(metric.name, member.figures[w.key].value(metric.name)),
                        "median": shown(metric.name, report.medians[w.key][metric.name]),
                        "flagged": any(
                            f.metric == metric.name and f.window == w.key for f in member.flags
                        ),
                    }
                    for w in report.windows
                ],
            }
        )
    return {
        "quality": {
            "windows": report.windows,
            "rows": rows,
            "reasons": flag_reasons(report, member),
            "computed_at": report.computed_at,
            "league_url": league_url(),
        }
    }


def member_flag(request, member_id: int) -> str:
    """The member list's column: a "review" pill for a flagged member, its reasons on hover."""
    report = quality_report(request)
    return flag_pill(report, report.member(member_id))


def quality_tile(request) -> dict:
    if not may_view_quality(request.user):
        return {}
    report = quality_report(request)
    return {"flagged": len(report.flagged), "url": league_url(flagged=True)}


# --- The league table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    median: str
    sort_url: str
    sorted: str  # "", "asc", "desc"


def _sort_key(metric: str, window: str):
    def key(member: MemberQuality):
        value = member.figures[window].value(metric)
        return (value is None, value if value is not None else 0)

    return key


def league_view(request, site):
    """Every member, one window at a time, sorted by a metric (worst first by default:
    flagged members, then by code)."""
    if not may_view_quality(request.user):
        raise PermissionDenied
    report = quality_report(request)
    keys = [w.key for w in report.windows]
    window = request.GET.get("window") if request.GET.get("window") in keys else keys[0]
    order = request.GET.get("o", "")
    metric = order.lstrip("-")
    flagged_only = request.GET.get("flagged") == "1"
    members = report.flagged if flagged_only else list(report.members)
    members.sort(key=lambda m: (not m.flagged, m.code))
    if metric in METRIC_BY_NAME:
        descending = order.startswith("-")
        defined = [m for m in members if m.figures[window].value(metric) is not None]
        undefined = [m for m in members if m.figures[window].value(metric) is None]
        defined.sort(key=_sort_key(metric, window), reverse=descending)
        members = defined + undefined  # "—" last either way
    columns = []
    for m in METRICS:
        now_sorted = "desc" if order == f"-{m.name}" else "asc" if order == m.name else ""
        # A first click sorts worst first.
        first = f"-{m.name}" if m.higher_is_worse else m.name
        flip = {"desc": m.name, "asc": f"-{m.name}"}.get(now_sorted, first)
        columns.append(
            Column(
                m.name,
                str(m.label),
                shown(m.name, report.medians[window][m.name]),
                league_url(window=window, order=flip, flagged=flagged_only),
                now_sorted,
            )
        )
    rows = [
        {
            "member": member,
            "url": reverse("admin:registry_member_change", args=[member.member_id]),
            "cells": [
                {
                    "value": shown(c.name, member.figures[window].value(c.name)),
                    "flagged": any(f.metric == c.name and f.window == window for f in member.flags),
                }
                for c in columns
            ],
            "reasons": flag_reasons(report, member),
        }
        for member in members
    ]
    context = {
        **site.each_context(request),
        "title": _("Member quality"),
        "report": report,
        "window": window,
        "windows": [
            {
                "key": w.key,
                "label": w.label,
                "url": league_url(window=w.key, order=order, flagged=flagged_only),
                "current": w.key == window,
            }
            for w in report.windows
        ],
        "columns": columns,
        "rows": rows,
        "flagged_only": flagged_only,
        "flagged_count": len(report.flagged),
        "all_url": league_url(window=window, order=order),
        "flagged_url": league_url(window=window, order=order, flagged=True),
        "thresholds": [
            {"label": METRIC_BY_NAME[name].label, "limit": shown(name, limit)}
            for name, limit in report.thresholds.items()
        ],
    }
    return TemplateResponse(request, "registry/admin/quality_league.html", context)

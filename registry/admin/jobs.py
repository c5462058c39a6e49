"""Background job runs, read-only: what ran, when, how it ended, and its summary (in words).

The sealer runs every few seconds; its runs that sealed nothing are hidden unless asked for,
so that the runs that failed or did work stay in view."""

from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.admin.common import (
    RegistryModelAdmin,
    job_label,
    json_pretty,
    status_pill,
)
from registry.admin.site import site
from registry.models import JobRun

# The summaries' keys in words (a key not listed shows as it is).
SUMMARY_LABELS = {
    "sealed": gettext_lazy("events sealed"),
    "batches": gettext_lazy("batches"),
    "checkpoint": gettext_lazy("checkpoint signed"),
    "lag_seconds": gettext_lazy("sealing lag (s)"),
    "published": gettext_lazy("tasks published"),
    "delivered_rows_deleted": gettext_lazy("delivered rows deleted"),
    "expires_on_or_before": gettext_lazy("expiring on or before"),
    "cases_expired": gettext_lazy("cases expired"),
    "identifiers_purged": gettext_lazy("identifiers purged"),
    "older_than": gettext_lazy("older than"),
    "closed_before": gettext_lazy("closed before"),
    "deleted": gettext_lazy("deleted"),
    "job_runs_deleted": gettext_lazy("job runs deleted"),
    "scrubbed": gettext_lazy("scrubbed"),
    "rows": gettext_lazy("rows"),
    "alerts": gettext_lazy("alerts"),
    "alerts_enqueued": gettext_lazy("overdue alerts sent"),
    "reminders_enqueued": gettext_lazy("reminders sent"),
    "overdue": gettext_lazy("became overdue"),
    "rotated": gettext_lazy("rows re-peppered"),
    "target_version": gettext_lazy("target pepper version"),
    "complete": gettext_lazy("complete"),
    "merged": gettext_lazy("merged"),
    "cursor": gettext_lazy("position"),
    "error": gettext_lazy("error"),
    "rings": gettext_lazy("rings"),
    "rings_created": gettext_lazy("rings formed"),
    "rings_dropped": gettext_lazy("rings gone or merged"),
    "rings_changed": gettext_lazy("rings changed"),
    "cases_joined": gettext_lazy("cases joining a ring"),
    "cases_left": gettext_lazy("cases leaving a ring"),
    "shared_identifiers": gettext_lazy("shared identifiers"),
}


def summary_words(details) -> list[tuple[str, str]]:
    if not isinstance(details, dict):
        return [("", str(details))]
    return [(str(SUMMARY_LABELS.get(key, key)), _value(value)) for key, value in details.items()]


def _value(value) -> str:
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dict):
        return ", ".join(f"{key} {_value(v)}" for key, v in value.items()) or "—"
    return str(value)


class JobFilter(admin.SimpleListFilter):
    title = gettext_lazy("job")
    parameter_name = "job"

    def lookups(self, request, model_admin):
        from registry.services.jobs import JOB_NAMES

        return [(name, job_label(name)) for name in JOB_NAMES]

    def queryset(self, request, queryset):
        return queryset.filter(job=self.value()) if self.value() else queryset


class WorkFilter(admin.SimpleListFilter):
    """By default the runs that failed or did something: not the sealer's idle runs."""

    title = gettext_lazy("runs")
    parameter_name = "runs"

    def lookups(self, request, model_admin):
        return (("work", _("Failed or did work")), ("all", _("All, with idle sealing")))

    def value(self):
        return super().value() or "work"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.exclude(
            job="audit_seal",
            status=JobRun.Status.SUCCEEDED,
            details__sealed=0,
            details__checkpoint__isnull=True,
        )


@admin.register(JobRun, site=site)
class JobRunAdmin(RegistryModelAdmin):
    list_display = (
        "job_display",
        "status_display",
        "started_at",
        "finished_at",
        "duration",
        "summary",
    )
    list_filter = (WorkFilter, JobFilter, "status")
    fields = (
        "job_display",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "summary",
        "details_pretty",
    )
    readonly_fields = fields
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("job"), ordering="job")
    def job_display(self, obj):
        return job_label(obj.job)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj):
        state = {"succeeded": "active", "failed": "suspended"}.get(obj.status, "open")
        return status_pill(state, obj.get_status_display())

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj):
        if obj.finished_at is None:
            return "—"
        return _("%(seconds).1f s") % {
            "seconds": (obj.finished_at - obj.started_at).total_seconds()
        }

    @admin.display(description=gettext_lazy("summary"))
    def summary(self, obj):
        return format_html_join(
            "; ", "{}{}", ((f"{k}: " if k else "", v) for k, v in summary_words(obj.details))
        )

    @admin.display(description=gettext_lazy("details"))
    def details_pretty(self, obj):
        return json_pretty(obj.details)

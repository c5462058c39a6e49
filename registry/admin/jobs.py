"""Background job runs, read-only: what ran, when, how it ended, and its summary."""

from django.contrib import admin
from django.utils.translation import gettext_lazy

from registry.admin.common import RegistryModelAdmin, json_pretty, json_summary, status_pill
from registry.admin.site import site
from registry.models import JobRun


class JobFilter(admin.SimpleListFilter):
    title = gettext_lazy("job")
    parameter_name = "job"

    def lookups(self, request, model_admin):
        from registry.services.jobs import JOB_NAMES

        return [(name, name) for name in JOB_NAMES]

    def queryset(self, request, queryset):
        return queryset.filter(job=self.value()) if self.value() else queryset


@admin.register(JobRun, site=site)
class JobRunAdmin(RegistryModelAdmin):
    list_display = ("job", "status_display", "started_at", "finished_at", "duration", "summary")
    list_filter = (JobFilter, "status")
    fields = ("job", "status", "started_at", "finished_at", "duration", "details_pretty")
    readonly_fields = fields
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj):
        state = {"succeeded": "active", "failed": "suspended"}.get(obj.status, "open")
        return status_pill(state, obj.get_status_display())

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, obj):
        if obj.finished_at is None:
            return "—"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f} s"

    @admin.display(description=gettext_lazy("summary"))
    def summary(self, obj):
        return json_summary(obj.details, 100)

    @admin.display(description=gettext_lazy("details"))
    def details_pretty(self, obj):
        return json_pretty(obj.details)

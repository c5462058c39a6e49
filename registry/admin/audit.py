"""The audit trail, read-only for everyone (superusers included): filters, chain
verification and a CSV export of a filtered range for a regulator.

The database refuses UPDATE/DELETE/TRUNCATE on the table anyway (migration 0002); the admin
does not even offer them: no add, change or delete permission, no delete action."""

import csv
import json
from datetime import datetime, time

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from registry_client.pii import looks_like_raw_identifier

from registry.admin.audit_details import details_line, details_list
from registry.admin.common import (
    RegistryModelAdmin,
    Tool,
    action_label,
    actor_for,
    admin_url,
    object_type_label,
    related_filter,
    require,
    status_pill,
)
from registry.admin.site import site
from registry.audit_actions import AuditAction
from registry.models import AuditEvent, AuditSeal
from registry.services.audit import (
    audit_checkpoint_latest,
    audit_record,
    audit_seal_lag_seconds,
    audit_verify,
    checkpoint_document,
    checkpoint_filename,
)

CSV_COLUMNS = (
    "id",
    "created_at",
    "actor_type",
    "member",
    "api_key_prefix",
    "officer",
    "action",
    "action_label",
    "object_type",
    "object_id",
    "details",
    "sealed",
)


def csv_header(column: str) -> str:
    """A column's name in the officer's language (in English: the column's code, which
    scripts reading the file rely on)."""
    return pgettext("audit CSV column", column)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class DateRangeFilter(admin.DateFieldListFilter):
    """The usual presets plus a from/before range of dates, for a regulator's period."""

    template = "registry/admin/date_range_filter.html"

    def choices(self, changelist):
        yield from super().choices(changelist)
        keep = [
            (k, v) for k, v in changelist.params.items() if not k.startswith(self.field_generic)
        ]
        yield {
            "range": True,
            "keep": keep,
            "since_name": self.lookup_kwarg_since,
            "until_name": self.lookup_kwarg_until,
            "since": self.date_params.get(self.lookup_kwarg_since, "")[:10],
            "until": self.date_params.get(self.lookup_kwarg_until, "")[:10],
            "selected": False,
        }

    def queryset(self, request, queryset):
        """A bare date means midnight where the officer is, not a naive datetime."""
        try:
            values = {
                key: value[-1] if isinstance(value, list) else value
                for key, value in self.used_parameters.items()
            }
            # An empty end of the range (one date left blank) means "open-ended".
            params = {key: _local_midnight(value) for key, value in values.items() if value}
            return queryset.filter(**params)
        except (ValueError, DjangoValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc


def _local_midnight(value):
    day = parse_date(value) if isinstance(value, str) and len(value) == 10 else None
    return timezone.make_aware(datetime.combine(day, time.min)) if day else value


class CachedValuesFilter(admin.SimpleListFilter):
    """The values seen so far in one column. DISTINCT over the whole trail is a full scan, so
    the list is cached for a few minutes."""

    field = ""

    def lookups(self, request, model_admin):
        key = f"admin:audit-values:{self.field}"
        values = cache.get(key)
        if values is None:
            values = list(
                AuditEvent.objects.exclude(**{self.field: ""})
                .order_by(self.field)  # not the model's -id: DISTINCT would include it
                .values_list(self.field, flat=True)
                .distinct()
            )
            cache.set(key, values, 300)
        return [(v, self.label(v)) for v in values]

    def label(self, value):
        return value

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ActionFilter(admin.SimpleListFilter):
    """Every kind of event the registry records (the enum), by its label: no scan needed."""

    title = gettext_lazy("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return AuditAction.choices

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class ObjectTypeFilter(CachedValuesFilter):
    title = gettext_lazy("object type")
    parameter_name = field = "object_type"

    def label(self, value):
        return object_type_label(value)


class ActorFilter(admin.SimpleListFilter):
    title = gettext_lazy("actor type")
    parameter_name = "actor_type"

    def lookups(self, request, model_admin):
        return AuditEvent.ActorType.choices

    def queryset(self, request, queryset):
        return queryset.filter(actor_type=self.value()) if self.value() else queryset


def sealed_q():
    return Exists(AuditSeal.objects.filter(event_id=OuterRef("pk")))


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(RegistryModelAdmin):
    view_audit_action = AuditAction.ADMIN_AUDIT_EVENT_VIEWED  # opening one event is audited too
    list_display = (
        "id",
        "created_at",
        "actor",
        "action_display",
        "object_type_display",
        "object_link",
        "details_summary",
        "sealed_display",
    )
    list_filter = (
        ("created_at", DateRangeFilter),
        ActorFilter,
        ActionFilter,
        ObjectTypeFilter,
        ("member", related_filter(gettext_lazy("member"))),
    )
    search_fields = ("=officer", "=api_key_prefix", "=object_id", "=member__code", "=action")
    search_help_text = gettext_lazy(
        "Exact match on an officer's user name, a member code, an API key prefix, an action "
        "or an object id."
    )
    list_select_related = ("member",)
    fields = (
        "id",
        "created_at",
        "actor_type",
        "member_display",
        "api_key_prefix",
        "officer",
        "action_display",
        "object_type_display",
        "object_link",
        "details_pretty",
        "sealed_display",
    )
    readonly_fields = fields
    change_list_template = "registry/admin/audit_change_list.html"
    show_full_result_count = False  # counting millions of rows on each page is slow
    actions = ("export_selected",)

    # --- Nobody changes history --------------------------------------------------------------
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    # --- Display ---------------------------------------------------------------------------------
    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_sealed=sealed_q())

    @admin.display(description=gettext_lazy("actor"))
    def actor(self, obj):
        return actor_label(obj)

    @admin.display(description=gettext_lazy("action"), ordering="action")
    def action_display(self, obj):
        return action_label(obj.action)

    @admin.display(description=gettext_lazy("object type"), ordering="object_type")
    def object_type_display(self, obj):
        return object_type_label(obj.object_type)

    @admin.display(description=gettext_lazy("object"))
    def object_link(self, obj):
        url = object_url(obj)
        return format_html('<a href="{}">{}</a>', url, obj.object_id) if url else obj.object_id

    @admin.display(description=gettext_lazy("member"))
    def member_display(self, obj):
        return str(obj.member) if obj.member_id and obj.member else "—"

    @admin.display(description=gettext_lazy("details"))
    def details_summary(self, obj):
        return details_line(obj.details, 80)

    @admin.display(description=gettext_lazy("details"))
    def details_pretty(self, obj):
        return details_list(obj.details)

    @admin.display(description=gettext_lazy("sealed"), boolean=False)
    def sealed_display(self, obj):
        sealed = getattr(obj, "_sealed", None)
        if sealed is None:
            sealed = AuditSeal.objects.filter(event_id=obj.pk).exists()
        return (
            status_pill("active", _("sealed"))
            if sealed
            else status_pill("open", _("not yet sealed"))
        )

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            # Reading the trail is itself on the trail: who looked, with which filters.
            with transaction.atomic():
                audit_record(
                    actor=actor_for(request),
                    action=AuditAction.ADMIN_AUDIT_BROWSED,
                    object_type="audit",
                    # Without the search text: an officer may have typed a raw identifier.
                    details={
                        "filters": {k: v for k, v in request.GET.items() if k != "q"},
                        "searched": bool(request.GET.get("q", "").strip()),
                    },
                )
        extra_context = {
            **(extra_context or {}),
            "registry_tools": [
                Tool(_("Verify chain"), admin_url(AuditEvent, "verify")),
                Tool(_("Latest checkpoint (JSON)"), admin_url(AuditEvent, "checkpoint")),
                Tool(
                    _("Export CSV (this filter)"),
                    admin_url(AuditEvent, "export") + _query_string(request),
                ),
            ],
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        own = [
            self.view_path("verify/", self.verify_view, "verify"),
            self.view_path("export/", self.export_view, "export"),
            self.view_path("checkpoint/", self.checkpoint_view, "checkpoint"),
        ]
        return own + super().get_urls()

    # --- Verify -------------------------------------------------------------------------------
    def verify_view(self, request):
        require(self.has_view_permission(request))
        started = timezone.now()
        # From the last verified checkpoint (a request cannot walk years of seals);
        # verify_audit --full walks them all.
        result = audit_verify(incremental=True)
        with transaction.atomic():
            audit_record(
                actor=actor_for(request),
                action=AuditAction.AUDIT_VERIFIED,
                object_type="audit",
                details={
                    "ok": result.ok,
                    "checked": result.checked,
                    "unsealed": result.unsealed,
                    "first_bad_event_id": result.first_bad_event_id,
                    "from_seq": result.anchor_seq,
                    "to_seq": result.head_seq,
                },
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Audit chain verification"),
            "opts": self.opts,
            "result": result,
            "started": started,
            "seconds": (timezone.now() - started).total_seconds(),
            "seal_lag": audit_seal_lag_seconds(),
            "checkpoint": audit_checkpoint_latest(),
            "checkpoint_url": admin_url(AuditEvent, "checkpoint"),
            "bad_event_url": (
                admin_url(AuditEvent, "change", result.first_bad_event_id)
                if result.first_bad_event_id
                else ""
            ),
        }
        return TemplateResponse(request, "registry/admin/audit_verify.html", context)

    # --- Checkpoint ---------------------------------------------------------------------------
    def checkpoint_view(self, request):
        """The newest signed checkpoint as its JSON file, to keep outside the database."""
        require(self.has_view_permission(request))
        checkpoint = audit_checkpoint_latest()
        if checkpoint is None:
            raise Http404(_("No checkpoint has been signed yet."))
        response = HttpResponse(
            json.dumps(checkpoint_document(checkpoint), indent=2) + "\n",
            content_type="application/json",
        )
        filename = checkpoint_filename(checkpoint)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # --- Export -------------------------------------------------------------------------------
    def export_view(self, request):
        """The changelist's own filters (same query string) decide what is exported."""
        require(self.has_export_permission(request))
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            messages.error(request, _("The filter is not valid; nothing was exported."))
            return HttpResponseRedirect(admin_url(AuditEvent, "changelist"))
        events = changelist.get_queryset(request).order_by("id")
        return self._csv_response(request, events, filters=recorded_filters(request.GET))

    @admin.action(
        description=gettext_lazy("Export the selected events as CSV"), permissions=("export",)
    )
    def export_selected(self, request, queryset):
        return self._csv_response(
            request, queryset.order_by("id"), filters={"selected": queryset.count()}
        )

    def _csv_response(self, request, events, *, filters):
        with transaction.atomic():
            # The file holds the events up to now: not this export's own event (written
            # below, before the file streams), so that the count matches the file.
            newest = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
            events = events.filter(id__lte=newest or 0)
            count = events.count()
            audit_record(
                actor=actor_for(request),
                action=AuditAction.AUDIT_EXPORTED,
                object_type="audit",
                details={"count": count, "filters": filters},
            )
        filename = f"audit-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
        response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


def object_url(event: AuditEvent) -> str:
    """The admin page of the event's object, when it has one."""
    from registry.models import ApiKey, Case, Dispute, Member, Ring

    if event.object_type == "ring":  # a ring merged into another is gone
        found = event.object_id.isdigit() and Ring.objects.filter(pk=int(event.object_id)).exists()
        return admin_url(Ring, "change", event.object_id) if found else ""

    models_by_type = {"case": Case, "dispute": Dispute, "member": Member, "api_key": ApiKey}
    model = models_by_type.get(event.object_type)
    if model is None or not event.object_id:
        return ""
    if model is Member:
        member = Member.objects.filter(code=event.object_id).only("pk").first()
        if member is None and event.object_id.isdigit():
            member = Member.objects.filter(pk=int(event.object_id)).only("pk").first()
        return admin_url(Member, "change", member.pk) if member else ""
    if model is ApiKey:
        key = ApiKey.objects.filter(prefix=event.object_id).only("pk").first()
        if key is None and event.object_id.isdigit():
            key = ApiKey.objects.filter(pk=int(event.object_id)).only("pk").first()
        return admin_url(ApiKey, "change", key.pk) if key else ""
    return admin_url(model, "change", event.object_id)


def actor_label(event: AuditEvent) -> str:
    if event.actor_type == AuditEvent.ActorType.MEMBER:
        code = event.member.code if event.member_id and event.member else str(event.member_id)
        return f"{code} ({event.api_key_prefix})" if event.api_key_prefix else code
    if event.actor_type == AuditEvent.ActorType.OFFICER:
        return _("officer %(username)s") % {"username": event.officer}
    return _("system")


def _query_string(request) -> str:
    query = request.GET.urlencode()
    return f"?{query}" if query else ""


class _Echo:
    def write(self, value):
        return value


def _safe_cell(value) -> str:
    """No cell may start a spreadsheet formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def recorded_filters(params) -> dict:
    """An export's filters as its audit event keeps them. The search box is free text, so
    only its length is kept (like every free text in the audit trail); so is any other value
    that looks like a raw identifier (a filter value is typed into the address bar as easily)."""
    recorded = {}
    for key, value in params.items():
        if key == SEARCH_VAR or looks_like_raw_identifier(value):
            recorded[f"{key}_length"] = len(value)
        else:
            recorded[key] = value
    return recorded


def _actor_type_label(code: str) -> str:
    try:
        return str(AuditEvent.ActorType(code).label)
    except ValueError:
        return code


def _csv_lines(events):
    writer = csv.writer(_Echo())
    yield "\ufeff"  # BOM: spreadsheet programs then read the file as UTF-8 (Chinese text)
    yield writer.writerow([csv_header(c) for c in CSV_COLUMNS])
    for event in events.select_related("member").iterator(chunk_size=2000):
        yield writer.writerow(
            [
                _safe_cell(v)
                for v in (
                    event.pk,
                    # Local time, as on the screen, with its offset (+08:00).
                    timezone.localtime(event.created_at).isoformat(),
                    _actor_type_label(event.actor_type),
                    event.member.code if event.member_id and event.member else "",
                    event.api_key_prefix,
                    event.officer,
                    event.action,
                    action_label(event.action),
                    event.object_type,
                    event.object_id,
                    json.dumps(event.details, ensure_ascii=False, sort_keys=True),
                    _("yes") if getattr(event, "_sealed", False) else _("no"),
                )
            ]
        )

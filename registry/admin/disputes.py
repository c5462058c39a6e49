"""The dispute desk: a queue sorted by deadline, the case file, and the decision.

The decision goes through `dispute_decide`, the same service as the API's
POST /disputes/{id}/decision: one code path, the same audit events, and the same refusal of
a second decision (InvalidTransition, shown here as an error message; nothing changes)."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from registry.admin.common import (
    CHOICE_ERRORS,
    RegistryModelAdmin,
    action_label,
    actor_for,
    admin_url,
    category_label,
    forget_raw_values,
    id_filter,
    id_tail,
    object_type_label,
    refuse_raw_identifiers,
    related_filter,
    report_error,
    require,
    status_pill,
)
from registry.admin.confirmations import CONFIRMATION_FIELD, uphold_confirmed, uphold_token
from registry.admin.site import site
from registry.errors import NotFound, RegistryError
from registry.models import (
    UNDECIDED_DISPUTE_STATUSES,
    AuditEvent,
    Dispute,
    DisputeStatus,
)
from registry.selectors.disputes import dispute_get, disputes_visible_to
from registry.services.disputes import dispute_decide


class DecisionForm(forms.Form):
    outcome = forms.ChoiceField(
        error_messages=CHOICE_ERRORS,
        label=gettext_lazy("Outcome"),
        choices=[
            (
                DisputeStatus.UPHELD,
                gettext_lazy("Upheld: remove the case and purge its identifiers"),
            ),
            (DisputeStatus.REJECTED, gettext_lazy("Rejected: the case is active again")),
        ],
        widget=forms.RadioSelect,
    )
    rationale = forms.CharField(
        label=gettext_lazy("Rationale"),
        widget=forms.Textarea(attrs={"rows": 5, "cols": 70}),
        help_text=gettext_lazy("Sent to both members with the decision."),
        validators=[refuse_raw_identifiers],
    )
    subject_statement = forms.CharField(
        label=gettext_lazy("Subject's statement (rejected only)"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        required=False,
        validators=[refuse_raw_identifiers],
        help_text=gettext_lazy(
            "Attached to the case if the dispute is rejected; lookups then show that a "
            "statement exists."
        ),
    )


class QueueFilter(admin.SimpleListFilter):
    """The desk opens on the undecided disputes; decided ones are one click away."""

    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return (
            ("undecided", _("Undecided")),
            ("due_soon", _("Due soon")),
            ("responded", _("Responded, ready to decide")),
            ("overdue", _("Overdue")),
            ("decided", _("Decided")),
            ("all", _("All")),
        )

    def value(self):
        return super().value() or "undecided"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == "undecided":
            return queryset.filter(status__in=UNDECIDED_DISPUTE_STATUSES)
        if value == "due_soon":  # as the dashboard's tile counts them
            soon = timezone.now() + timedelta(days=settings.REGISTRY_DISPUTE_REMINDER_DAYS)
            return queryset.filter(status__in=UNDECIDED_DISPUTE_STATUSES, due_at__lte=soon).exclude(
                effective_status=DisputeStatus.OVERDUE
            )
        if value == "responded":
            return queryset.filter(effective_status=DisputeStatus.RESPONDED)
        if value == "overdue":
            return queryset.filter(effective_status=DisputeStatus.OVERDUE)
        if value == "decided":
            return queryset.exclude(status__in=UNDECIDED_DISPUTE_STATUSES)
        return queryset


def duration(delta: timedelta) -> str:
    """'19 days 23 hours', '5 hours 12 minutes', '40 minutes': a deadline in the units an
    officer plans with (Django's timeuntil says '2 weeks, 5 days')."""
    minutes_total = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes_total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    units = [
        (days, ngettext("%(count)d day", "%(count)d days", days)),
        (hours, ngettext("%(count)d hour", "%(count)d hours", hours)),
        (minutes, ngettext("%(count)d minute", "%(count)d minutes", minutes)),
    ]
    shown = [text % {"count": n} for n, text in units if n][:2]
    return " ".join(shown) or ngettext("%(count)d minute", "%(count)d minutes", 0) % {"count": 0}


def time_left(dispute: Dispute, now=None) -> str:
    now = now or timezone.now()
    if dispute.status not in UNDECIDED_DISPUTE_STATUSES:
        return "—"
    if dispute.due_at <= now:
        return _("overdue by %(time)s") % {"time": duration(now - dispute.due_at)}
    return _("%(time)s left") % {"time": duration(dispute.due_at - now)}


def is_overdue(dispute: Dispute, now=None) -> bool:
    now = now or timezone.now()
    return dispute.status in UNDECIDED_DISPUTE_STATUSES and dispute.due_at <= now


@admin.register(Dispute, site=site)
class DisputeAdmin(RegistryModelAdmin):
    list_display = (
        "dispute_id",
        "due_at",
        "time_left_display",
        "status_display",
        "case_display",
        "category",
        "reason",
        "filed_by_code",
        "decided_at",
    )
    list_display_links = ("dispute_id", "case_display")
    list_filter = (QueueFilter, "reason", ("filed_by", related_filter(gettext_lazy("filed by"))))
    search_fields = (
        "case__reference",
        "case__member__code",
        "case__member__name",
        "filed_by__code",
        "filed_by__name",
    )
    search_help_text = gettext_lazy(
        "Search by dispute id (or its last digits, as shown), case reference, or either "
        "member's code or name."
    )
    ordering = ("due_at",)
    list_per_page = 50

    def lookup_allowed(self, lookup, value, request=None):
        # The member page links to the disputes about that member's cases.
        return lookup == "case__member__id__exact" or super().lookup_allowed(lookup, value, request)

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_id = id_filter(queryset, search_term) if search_term.strip() else None
        if by_id is not None:
            found = found | queryset.filter(pk__in=by_id.values("pk"))
        return found, may_have_duplicates

    @admin.display(description=gettext_lazy("dispute"), ordering="id")
    def dispute_id(self, obj):
        return format_html("<code>{}</code>", id_tail(obj.pk))

    def get_queryset(self, request):
        return disputes_visible_to(actor=actor_for(request)).select_related("case__category")

    @admin.display(description=gettext_lazy("time left"), ordering="due_at")
    def time_left_display(self, obj):
        css = "registry-overdue" if is_overdue(obj) else "registry-due"
        return format_html('<span class="{}">{}</span>', css, time_left(obj))

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj):
        status = getattr(obj, "effective_status", obj.status)
        return status_pill(status, DisputeStatus(status).label)

    @admin.display(description=gettext_lazy("case"), ordering="case__reference")
    def case_display(self, obj):
        return f"{obj.case.member.code} · {obj.case.reference}"

    def get_list_display(self, request):
        """The decision's time matters in the decided queue; the time left elsewhere."""
        shown = list(self.list_display)
        if request.GET.get(QueueFilter.parameter_name) in ("decided", "all"):
            return shown
        return [name for name in shown if name != "decided_at"]

    @admin.display(description=gettext_lazy("filed by"), ordering="filed_by__code")
    def filed_by_code(self, obj):
        return obj.filed_by.code

    @admin.display(description=gettext_lazy("category"), ordering="case__category")
    def category(self, obj):
        return category_label(obj.case.category_id, obj.case.category.name)

    def has_add_permission(self, request):
        return False  # disputes are filed by members through the API

    def has_change_permission(self, request, obj=None):
        return False  # decided through decide_view, never edited

    def has_decide_permission(self, request):
        return request.user.has_perm("registry.change_dispute")

    def get_urls(self):
        own = [
            self.view_path("<uuid:pk>/decide/", self.decide_view, "decide"),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The case file: the case, both members' statements, the history, the decision."""
        require(self.has_view_permission(request))
        try:
            dispute = dispute_get(actor=actor_for(request), dispute_id=object_id)
        except (NotFound, DjangoValidationError):  # unknown or malformed id
            return self._missing(request)
        return self._case_file(request, dispute, DecisionForm())

    def _missing(self, request):
        messages.error(request, _("No such dispute."))
        return HttpResponseRedirect(admin_url(Dispute, "changelist"))

    def _case_file(self, request, dispute, form, status=200):
        forget_raw_values(form)
        case = dispute.case
        undecided = dispute.status in UNDECIDED_DISPUTE_STATUSES
        context = {
            **self.admin_site.each_context(request),
            "title": _("Dispute about case %(reference)s") % {"reference": case.reference},
            "subtitle": None,
            "opts": self.opts,
            "original": dispute,
            "dispute": dispute,
            "case": case,
            "category": category_label(case.category_id, case.category.name),
            "identifiers": list(case.identifiers.order_by("kind", "fingerprint")),
            "effective_status": DisputeStatus(
                getattr(dispute, "effective_status", dispute.status)
            ).label,
            "time_left": time_left(dispute),
            "overdue": is_overdue(dispute),
            "undecided": undecided,
            "can_decide": undecided and self.has_decide_permission(request),
            "form": form,
            "decide_url": admin_url(dispute, "decide", dispute.pk),
            "case_url": admin_url(case, "change", case.pk),
            "history": self._history(dispute),
            "dispute_id": str(dispute.pk),
            "hidden_from_lookups": is_overdue(dispute),
            "related_cases": related_cases(case),
            "audit_url": audit_url_for(dispute.pk),
        }
        return TemplateResponse(
            request, "registry/admin/dispute_case_file.html", context, status=status
        )

    def _history(self, dispute):
        events = list(
            AuditEvent.objects.filter(
                Q(object_type="dispute", object_id=str(dispute.pk))
                | Q(object_type="case", object_id=str(dispute.case_id))
            )
            .exclude(action__endswith=".viewed")
            .exclude(action__endswith=".listed")
            .select_related("member")
            .order_by("id")[:200]
        )
        for event in events:
            event.action_label = action_label(event.action)
            event.object_label = object_type_label(event.object_type)
        return events

    def decide_view(self, request, pk):
        """Rejecting decides at once. Upholding decides only with the confirmation token of
        the summary page (registry/admin/confirmations.py); without it, whether from the case
        file's form or a POST made by hand, the summary is shown and nothing changes."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        require(self.has_decide_permission(request))
        actor = actor_for(request)
        form = DecisionForm(request.POST)
        if form.is_valid() and not decision_confirmed(request, pk, form):
            try:
                dispute = dispute_get(actor=actor, dispute_id=pk)
            except NotFound:
                return self._missing(request)
            if dispute.status in UNDECIDED_DISPUTE_STATUSES:
                if request.POST.get(CONFIRMATION_FIELD):
                    messages.warning(
                        request, _("The confirmation has lapsed or does not match: confirm again.")
                    )
                return self._confirm_page(request, dispute, form)
            # Decided already: the service refuses it below, with its own message.
        if form.is_valid():
            try:
                dispute = dispute_decide(actor=actor, dispute_id=pk, **form.cleaned_data)
            except RegistryError as exc:
                report_error(request, exc)
                return HttpResponseRedirect(admin_url(Dispute, "change", pk))
            messages.success(
                request,
                _("Dispute decided: %(outcome)s.")
                % {"outcome": DisputeStatus(dispute.status).label},
            )
            return HttpResponseRedirect(admin_url(Dispute, "changelist"))
        try:
            dispute = dispute_get(actor=actor, dispute_id=pk)
        except NotFound:
            return self._missing(request)
        return self._case_file(request, dispute, form, status=400)

    def _confirm_page(self, request, dispute, form):
        """Upholding removes the case and purges its identifiers: a summary to confirm."""
        case = dispute.case
        context = {
            **self.admin_site.each_context(request),
            "title": _("Uphold the dispute?"),
            "opts": self.opts,
            "original": dispute,
            "dispute": dispute,
            "case": case,
            "identifier_count": case.identifiers.count(),
            "cleaned": form.cleaned_data,
            "confirmation_field": CONFIRMATION_FIELD,
            "confirmation": uphold_token(request.user, dispute.pk, form.cleaned_data["outcome"]),
            "decide_url": admin_url(dispute, "decide", dispute.pk),
            "cancel_url": admin_url(dispute, "change", dispute.pk),
        }
        return TemplateResponse(request, "registry/admin/dispute_confirm.html", context)


def decision_confirmed(request, dispute_id, form) -> bool:
    """Whether the decision may be made now: a rejection always; upholding only with the
    summary page's token for this dispute, this outcome and this officer."""
    outcome = form.cleaned_data["outcome"]
    return outcome != DisputeStatus.UPHELD or uphold_confirmed(request, dispute_id, outcome)


def related_cases(case):
    """Other cases holding one of this case's identifiers (by fingerprint)."""
    from registry.models import Case

    fingerprints = case.identifiers.values("fingerprint")
    return list(
        Case.objects.filter(identifiers__fingerprint__in=fingerprints)
        .exclude(pk=case.pk)
        .select_related("member")
        .distinct()
        .order_by("-created_at")[:50]
    )


def audit_url_for(object_id) -> str:
    """The audit trail's events about one object (searched by its exact id)."""
    return admin_url(AuditEvent, "changelist") + "?" + urlencode({"q": str(object_id)})

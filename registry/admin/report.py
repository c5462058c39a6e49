"""The regulator's monthly report in the admin: pick a month (Asia/Shanghai; the last full
month by default) and download it as PDF or CSV. Officers and read-only auditors may; each
download is generated afresh and audited by registry/services/report.py. Downloads are POSTs:
generating a report writes an audit event."""

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.admin.common import CHOICE_ERRORS, actor_for, no_store
from registry.selectors.report import REPORT_TIMEZONE_NAME, ReportMonth
from registry.services.report import REPORT_FORMATS, report_generate

MONTHS_OFFERED = 24


def may_download_report(user) -> bool:
    """Whoever may read cases, disputes, lookups and the audit trail: compliance officers and
    auditors (the report holds nothing more than those pages)."""
    return bool(
        user.is_active
        and user.is_staff
        and all(
            user.has_perm(f"registry.view_{model}")
            for model in ("case", "dispute", "lookup", "auditevent")
        )
    )


def offered_months(now=None) -> list[ReportMonth]:
    """The current month (so far) and the 23 before it, newest first."""
    current = ReportMonth.containing(now or timezone.now())
    return [current.shifted(-n) for n in range(MONTHS_OFFERED)]


class ReportForm(forms.Form):
    month = forms.ChoiceField(label=gettext_lazy("Month"), error_messages=CHOICE_ERRORS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["month"].choices = [(str(m), str(m)) for m in offered_months()]
        self.fields["month"].initial = str(ReportMonth.previous())


def _chosen_format(data) -> str:
    """The button pressed: "Download CSV" (name csv) or else the PDF."""
    return next((fmt for fmt in REPORT_FORMATS if fmt in data), REPORT_FORMATS[0])


def regulator_report_view(request, site):
    if settings.REGISTRY_ROLE != "registry":
        raise Http404  # a custodian holds no cases, disputes or lookups to report
    if not may_download_report(request.user):
        raise PermissionDenied
    form = ReportForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        report = report_generate(
            actor=actor_for(request),
            month=ReportMonth.parse(form.cleaned_data["month"]),
            fmt=_chosen_format(request.POST),
            via="admin",
        )
        response = HttpResponse(report.content, content_type=report.content_type)
        response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
        return no_store(response)
    context = {
        **site.each_context(request),
        "title": _("Monthly report to the regulator"),
        "form": form,
        "timezone": REPORT_TIMEZONE_NAME,
    }
    return no_store(TemplateResponse(request, "registry/admin/regulator_report.html", context))

"""Subject access: an officer enters an identifier's kind and token (from the member that
received the data subject's request) and gets what the registry holds about it, on screen
or as CSV. The report and its audit event come from the compliance selector, the same as
the API's GET /compliance/subject-access. The token travels in a POST body only, never in
a URL (URLs end up in logs)."""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.admin.common import (
    CHOICE_ERRORS,
    actor_for,
    category_label,
    id_tail,
    no_store,
    report_error,
)
from registry.errors import RegistryError
from registry.models import CaseStatus, DisputeStatus, IdentifierKind, Purpose, WatchPurpose
from registry.selectors.compliance import subject_access_report
from registry.tokens import is_token


class TokenInput(forms.TextInput):
    """Shows a valid token back, never anything else: an officer who pasted the phone number
    itself by mistake must not find it echoed in the page (nor in the browser's cache)."""

    def format_value(self, value):
        text = str(value or "").strip().lower()
        return text if is_token(text) else None


class SubjectAccessForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Identifier kind"),
        choices=IdentifierKind.choices,
        error_messages=CHOICE_ERRORS,
    )
    token = forms.CharField(
        label=gettext_lazy("Token"),
        min_length=128,
        max_length=128,
        strip=True,
        widget=TokenInput(attrs={"size": 80, "autocomplete": "off", "spellcheck": "false"}),
        help_text=gettext_lazy(
            "The 128-hex-character token the member's client computed for the identifier "
            "(never the phone number, ID or card number itself)."
        ),
    )

    def clean_token(self):
        token = self.cleaned_data["token"].lower()
        if not is_token(token):
            raise forms.ValidationError(_("A token is 128 hexadecimal characters."))
        return token


def may_use_subject_access(user) -> bool:
    return bool(
        user.is_active
        and user.is_staff
        and user.has_perm("registry.view_case")
        and user.has_perm("registry.view_lookup")
    )


def subject_access_view(request, site):
    if not may_use_subject_access(request.user):
        raise PermissionDenied
    form = SubjectAccessForm(request.POST or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = subject_access_report(actor=actor_for(request), **form.cleaned_data)
        except RegistryError as exc:
            report_error(request, exc)
        else:
            if "download" in request.POST:
                return _csv(report)
    context = {
        **site.each_context(request),
        "title": _("Subject access"),
        "form": form,
        "report": _presentable(report) if report else None,
    }
    return no_store(TemplateResponse(request, "registry/admin/subject_access.html", context))


def _csv(report: dict) -> HttpResponse:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # spreadsheet programs then read UTF-8 (Chinese headers)
    writer = csv.writer(buffer)
    for row in subject_access_csv_rows(report):
        writer.writerow(row)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(report["generated_at"]).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="subject-access-{report["fingerprint"]}-{stamp}.csv"'
    )
    return no_store(response)


# The officers' time zone: the file says when things happened as the screen does (and as
# the regulator reads them), whatever zone the server process runs in.
CSV_TIME_ZONE = ZoneInfo("Asia/Shanghai")

CSV_COLUMNS = (
    "record",
    "id",
    "member",
    "time",
    "purpose",
    "category",
    "status",
    "confirmed_at",
    "expires_at",
    "has_subject_statement",
    "kind",
    "fingerprint",
)


def subject_access_csv_rows(report: dict):
    """The report as CSV rows, header first: one row per case, lookup and watch, for the
    download (the caller writes them with csv.writer). Words, not codes, in the officer's
    language (record types, categories, statuses, purposes, the identifier's kind, yes/no);
    times in Asia/Shanghai with their offset. Only registry-controlled values (ids, member
    codes, dates, labels), never free text, so no cell can smuggle a spreadsheet formula."""
    yield [_column_title(c) for c in CSV_COLUMNS]
    ident = [_label(IdentifierKind, report["kind"]), report["fingerprint"]]
    for case in report["cases"]:
        yield [
            _("Case"),
            str(case["case_id"]),
            case["member"],
            _csv_time(case["created_at"]),
            "",
            category_label(case["category"]),
            _label(CaseStatus, case["status"]),
            _csv_time(case["confirmed_at"]),
            _csv_time(case["expires_at"]),
            _("yes") if case["has_subject_statement"] else _("no"),
            *ident,
        ]
    for lookup in report["lookups"]:
        yield [
            _("Lookup"),
            str(lookup["lookup_id"]),
            lookup["member"],
            _csv_time(lookup["looked_up_at"]),
            _label(Purpose, lookup["purpose"]),
            "",
            "",
            "",
            "",
            "",
            *ident,
        ]
    for watch in report.get("watches", []):
        yield [
            _("Watch"),
            str(watch["watch_id"]),
            watch["member"],
            _csv_time(watch["watched_since"]),
            _label(WatchPurpose, watch["purpose"]),
            "",
            "",
            "",
            _csv_time(watch["expires_on"]),
            "",
            *ident,
        ]


def _csv_time(value) -> str:
    """A time in Asia/Shanghai with its offset (2026-11-03T09:15:00+08:00); a date as it is."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(CSV_TIME_ZONE)
    return value.isoformat()


def _column_title(column: str) -> str:
    return {
        "record": _("Record"),
        "id": _("ID"),
        "member": _("Member"),
        "time": _("Time"),
        "purpose": _("Purpose"),
        "category": _("Category"),
        "status": _("Status"),
        "confirmed_at": _("Confirmed on"),
        "expires_at": _("Expires on"),
        "has_subject_statement": _("Subject's statement"),
        "kind": _("Identifier kind"),
        "fingerprint": _("Fingerprint"),
    }[column]


def _label(choices, value) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def _presentable(report: dict) -> dict:
    """Labels for the codes, in the officer's language."""
    cases = [
        {
            **case,
            "status_label": _label(CaseStatus, case["status"]),
            "category_label": category_label(case["category"]),
            "id_tail": id_tail(case["case_id"]),
            "disputes": [
                {**d, "status_label": _label(DisputeStatus, d["status"])} for d in case["disputes"]
            ],
        }
        for case in report["cases"]
    ]
    lookups = [
        {**lookup, "purpose_label": _label(Purpose, lookup["purpose"])}
        for lookup in report["lookups"]
    ]
    watches = [
        {**watch, "purpose_label": _label(WatchPurpose, watch["purpose"])}
        for watch in report.get("watches", [])
    ]
    return {
        **report,
        "kind_label": _label(IdentifierKind, report["kind"]),
        "cases": cases,
        "lookups": lookups,
        "watches": watches,
    }

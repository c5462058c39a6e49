"""What every registry ModelAdmin shares: the acting officer, service errors shown as
messages (never a 500), buttons on the change page, and simple form pages for the audited
actions (suspend, withdraw, revoke, ...)."""

import json
import re
import uuid
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import CharField
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext, gettext_lazy
from registry_client.pii import looks_like_raw_identifier

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import RegistryError
from registry.models import Scope
from registry.services.audit import audit_record

# The contract's categories (spec/api.md), so that their names read in the officer's
# language; the database keeps the English name for any category added later.
CATEGORY_LABELS = {
    "identity_theft": gettext_lazy("Identity theft"),
    "forged_documents": gettext_lazy("Forged documents"),
    "synthetic_identity": gettext_lazy("Synthetic identity"),
    "first_party_fraud": gettext_lazy("First-party fraud"),
    "account_takeover": gettext_lazy("Account takeover"),
    "money_mule": gettext_lazy("Money mule"),
    "loan_intermediary_fraud": gettext_lazy("Loan-intermediary fraud"),
}


# The words for the audit trail's object types (the codes stay in the database).
OBJECT_TYPE_LABELS = {
    "api_key": gettext_lazy("API key"),
    "audit": gettext_lazy("Audit trail"),
    "audit_checkpoint": gettext_lazy("Audit checkpoint"),
    "case": gettext_lazy("Case"),
    "category": gettext_lazy("Category"),
    "dispute": gettext_lazy("Dispute"),
    "idempotency_key": gettext_lazy("Idempotency key"),
    "identifier": gettext_lazy("Identifier"),
    "member": gettext_lazy("Member"),
    "oprf": gettext_lazy("Token service"),
    "pepper_version": gettext_lazy("Pepper version"),
    "report": gettext_lazy("Regulator's report"),
    "user": gettext_lazy("Officer account"),
    "fingerprint": gettext_lazy("Fingerprint"),
    "text": gettext_lazy("Free text"),
    "ring": gettext_lazy("Ring"),
}

# The background jobs by what they do.
JOB_LABELS = {
    "expiry": gettext_lazy("Case expiry"),
    "lookup_log_retention": gettext_lazy("Sighting retention"),
    "idempotency_retention": gettext_lazy("Idempotency key retention"),
    "outbox_sweep": gettext_lazy("Outbox sweep"),
    "audit_seal": gettext_lazy("Audit trail sealing"),
    "dispute_deadlines": gettext_lazy("Dispute deadlines"),
    "pepper_rotation": gettext_lazy("Pepper rotation"),
    "usage_signals": gettext_lazy("Usage signals"),
    "closed_text_scrub": gettext_lazy("Closed cases' text scrub"),
    "partition_maintenance": gettext_lazy("Partition maintenance"),
    "ring_rebuild": gettext_lazy("Ring rebuild"),
}


def action_label(code: str) -> str:
    """An audit action in words (an action no longer in the enum keeps its code)."""
    try:
        return str(AuditAction(code).label)
    except ValueError:
        return code


def object_type_label(code: str) -> str:
    return str(OBJECT_TYPE_LABELS.get(code, code))


def job_label(code: str) -> str:
    return str(JOB_LABELS.get(code, code))


# A time-ordered id starts with the time, so ids made the same day share their first digits;
# its last group (48 random bits) tells them apart.
ID_PART_RE = re.compile(r"^[0-9a-f-]{6,35}$")


def id_tail(pk) -> str:
    return str(pk).rsplit("-", 1)[-1]


def id_filter(queryset, term: str, field: str = "pk"):
    """`queryset` narrowed to the rows whose `field` (a UUID) is `term` or contains it; None
    if `term` cannot be (part of) an id."""
    term = term.strip().lower()
    try:
        return queryset.filter(**{field: uuid.UUID(term)})
    except ValueError:
        pass
    if not ID_PART_RE.match(term):
        return None
    return queryset.annotate(_id_text=Cast(field, CharField())).filter(_id_text__contains=term)


# Django's own says "Select a valid choice. <value> is not one of the available choices.":
# an error never repeats a submitted value.
CHOICE_ERRORS = {"invalid_choice": gettext_lazy("Select one of the choices offered.")}


def refuse_raw_identifiers(value: str) -> None:
    """Validator for what officers type (rationales, reasons, statements, labels): the same
    raw-identifier screen as the API's free-text fields. The error never repeats the value."""
    if looks_like_raw_identifier(value):
        raise ValidationError(
            gettext_lazy(
                "This looks like a raw personal identifier (a phone, resident ID, card or IMEI "
                "number, or an e-mail address). Describe the matter without it."
            ),
            code="raw_pii_rejected",
        )


def forget_raw_values(form) -> None:
    """A field refused as a raw identifier is shown again empty: the page must not echo the
    phone or ID number an officer typed (nor keep it in the browser's history)."""
    if not form.is_bound or not form.errors:
        return
    refused = [
        name
        for name, errors in form.errors.as_data().items()
        if any(error.code == "raw_pii_rejected" for error in errors)
    ]
    if refused:
        form.data = form.data.copy()
        for name in refused:
            form.data[form.add_prefix(name)] = ""


def titled(filter_class, title):
    """A list filter with a translated title (for fields the models left without a
    verbose_name, whose title would otherwise show in English)."""

    class TitledFilter(filter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return TitledFilter


def related_filter(title):
    return titled(admin.RelatedFieldListFilter, title)


def scope_labels(scopes) -> str:
    """Key scopes, and the limits' own scope "evaluate" (one budget per member)."""
    return ", ".join(_scope_label(s) for s in scopes)


def _scope_label(scope: str) -> str:
    if scope in Scope.values:
        return str(Scope(scope).label)
    return gettext("OPRF evaluate") if scope == "evaluate" else scope


def status_pill(value: str, label: str) -> str:
    """A coloured label for a status (colours in registry/static/registry/admin.css)."""
    return format_html('<span class="registry-pill registry-pill-{}">{}</span>', value, label)


def json_summary(details, width: int) -> str:
    """A JSON column on one line of at most `width` characters, for a change list."""
    text = json.dumps(details, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def json_pretty(details) -> str:
    """A JSON column laid out, for a change form."""
    text = json.dumps(details, ensure_ascii=False, sort_keys=True, indent=2)
    return format_html("<pre class='registry-json'>{}</pre>", text)


def category_label(code: str, name: str = "") -> str:
    return str(CATEGORY_LABELS.get(code, name or code))


def actor_for(request) -> Actor:
    return Actor.for_officer(request.user)


def report_error(request, exc: RegistryError) -> None:
    """A service refused: say why, in the officer's language where the service allows."""
    detail = str(exc.detail) if exc.detail else ""
    text = f"{exc.title}: {detail}" if detail else str(exc.title)
    messages.error(request, text)


@dataclass(frozen=True)
class Tool:
    """A button in the change page's object tools."""

    label: str
    url: str
    danger: bool = False


def admin_url(obj_or_model, view: str, *args) -> str:
    opts = obj_or_model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


class RegistryModelAdmin(admin.ModelAdmin):
    """Base class: errors from services become messages and leave everything unchanged (the
    admin's own transaction rolls back before we redirect)."""

    change_form_template = "registry/admin/change_form.html"
    # The admin's "delete selected" bypasses services; no registry object is deleted by hand.
    actions = None
    # Officers reading a record of registry data leave a trace, as members do through the API:
    # the audit action of opening one record (None: not audited).
    view_audit_action: AuditAction | None = None

    def has_delete_permission(self, request, obj=None):
        return False

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        kwargs.setdefault("error_messages", CHOICE_ERRORS)
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def object_tools(self, request, obj) -> list[Tool]:
        return []

    def extra_change_context(self, request, obj) -> dict:
        return {}

    def audit_search_term(self, obj) -> str:
        """What finds this object's events in the audit trail's search ("" for none)."""
        return ""

    def audit_tools(self, obj) -> list["Tool"]:
        term = self.audit_search_term(obj)
        if not term:
            return []
        from registry.models import AuditEvent

        url = admin_url(AuditEvent, "changelist") + "?" + urlencode({"q": term})
        return [Tool(gettext("Audit events"), url)]

    def url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def view_path(self, route: str, view, name: str):
        """One of this admin's own pages (for get_urls), behind the admin's login."""
        return path(route, self.admin_site.admin_view(view), name=self.url_name(name))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if object_id is not None:
            obj = self.get_object(request, admin.utils.unquote(object_id))
            if obj is not None:
                extra_context["registry_tools"] = self.object_tools(request, obj) + (
                    self.audit_tools(obj)
                )
                extra_context.update(self.extra_change_context(request, obj))
                if self.view_audit_action and request.method == "GET":
                    audit_record(
                        actor=actor_for(request),
                        action=self.view_audit_action,
                        object_type=self.opts.model_name,
                        object_id=obj.pk,
                    )
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RegistryError as exc:
            report_error(request, exc)
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except RegistryError as exc:
            report_error(request, exc)
            return HttpResponseRedirect(request.get_full_path())

    def form_action(self, request, form, obj, run):
        """A form page's POST: when the form is valid, `run()` (the service call, which
        returns the message to show), then back to `obj`'s page. None: show the form again
        (a GET, an invalid form, or the service refused: its error is then a message)."""
        if request.method != "POST" or not form.is_valid():
            return None
        try:
            done = run()
        except RegistryError as exc:
            report_error(request, exc)
            return None
        messages.success(request, done)
        return HttpResponseRedirect(admin_url(obj, "change", obj.pk))

    def form_page(
        self, request, *, title, form, obj=None, submit_label, intro="", danger=False, status=200
    ):
        """A small page with one form, for an action that needs input (a reason, a limit)."""
        forget_raw_values(form)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj) if obj is not None else None,
            "opts": self.opts,
            "original": obj,
            "form": form,
            "submit_label": submit_label,
            "intro": intro,
            "danger": danger,
            "cancel_url": (
                admin_url(obj, "change", obj.pk)
                if obj is not None
                else admin_url(self.model, "changelist")
            ),
        }
        return TemplateResponse(request, "registry/admin/form_page.html", context, status=status)


def posted(request):
    """The POST data for a bound form (even an empty one), or None on GET."""
    return request.POST if request.method == "POST" else None


class ReadOnlyTabularInline(admin.TabularInline):
    """Rows shown on the parent's page; nothing added, changed or deleted from there."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        """Whoever may view the parent sees its rows (officers have no permission of their
        own on, say, case identifiers, which only ever appear inside a case)."""
        opts = self.parent_model._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def no_store(response):
    """Pages that show a secret once must not be kept by the browser or a proxy."""
    response["Cache-Control"] = "no-store, private"
    response["Pragma"] = "no-cache"
    return response

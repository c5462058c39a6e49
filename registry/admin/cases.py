"""Cases and categories. Nothing of a case is edited by hand: officers search and read, and
change a case only through audited actions (withdrawal on the member's written request);
categories change only their retention period, through the service that re-dates cases."""

import re
import uuid

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.actors import Actor
from registry.admin.common import (
    ReadOnlyTabularInline,
    RegistryModelAdmin,
    Tool,
    actor_for,
    admin_url,
    category_label,
    id_filter,
    id_tail,
    posted,
    refuse_raw_identifiers,
    related_filter,
    require,
    status_pill,
)
from registry.admin.site import site
from registry.audit_actions import AuditAction
from registry.models import LIVE_CASE_STATUSES, Case, CaseIdentifier, Category, Dispute
from registry.services.audit import audit_record
from registry.services.cases import case_withdraw
from registry.tokens import FINGERPRINT_LENGTH

FINGERPRINT_RE = re.compile(rf"^[0-9a-f]{{{FINGERPRINT_LENGTH}}}$")


def on_behalf_of(request, member) -> Actor:
    """An officer entering a member's written request to withdraw its case: the member's
    withdrawal (the service applies the member's rules: only its own, only a live case), and
    the audit event also names the officer who entered it (AuditEvent.officer)."""
    return Actor("member", member=member, user=request.user, scopes=frozenset({"submit"}))


class WithdrawCaseForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("The member's written request"),
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=gettext_lazy(
            "Reference of the member's letter or e-mail asking for the withdrawal."
        ),
        validators=[refuse_raw_identifiers],
    )


class CategoryFilter(admin.RelatedFieldListFilter):
    """The categories by their names in the officer's language, not their codes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = gettext_lazy("category")

    def field_choices(self, field, request, model_admin):
        return [
            (category.pk, category_label(category.pk, category.name))
            for category in Category.objects.order_by("code")
        ]


class CaseIdentifierInline(ReadOnlyTabularInline):
    """Kind and fingerprint only: the digest is never shown."""

    model = CaseIdentifier
    fields = ("kind_display", "fingerprint_display", "pepper_display")
    readonly_fields = fields

    @admin.display(description=gettext_lazy("kind"))
    def kind_display(self, obj):
        return obj.get_kind_display()

    @admin.display(description=gettext_lazy("fingerprint"))
    def fingerprint_display(self, obj):
        return format_html("<code class='registry-fingerprint'>{}</code>", obj.fingerprint)

    @admin.display(description=gettext_lazy("pepper version"))
    def pepper_display(self, obj):
        return obj.pepper_version


class CaseDisputeInline(ReadOnlyTabularInline):
    model = Dispute
    fields = ("open_link", "reason", "status", "filed_by_code", "filed_at", "due_at", "decided_at")
    readonly_fields = fields

    @admin.display(description=gettext_lazy("dispute"))
    def open_link(self, obj):
        return format_html(
            '<a href="{}"><code>{}</code></a>', admin_url(obj, "change", obj.pk), id_tail(obj.pk)
        )

    @admin.display(description=gettext_lazy("filed by"))
    def filed_by_code(self, obj):
        return obj.filed_by.code


@admin.register(Case, site=site)
class CaseAdmin(RegistryModelAdmin):
    view_audit_action = AuditAction.ADMIN_CASE_VIEWED
    list_display = (
        "short_id",
        "member_code",
        "reference",
        "category_display",
        "status_display",
        "confirmed_at",
        "expires_at",
        "created_at",
    )
    list_filter = (
        "status",
        ("category", CategoryFilter),
        ("member", related_filter(gettext_lazy("member"))),
    )
    list_select_related = ("member", "category")
    search_fields = ("reference", "member__code")
    search_help_text = gettext_lazy(
        "Search by member code, case reference, case id (or its last digits, as shown) or "
        "identifier fingerprint."
    )
    fields = (
        "id",
        "member_display",
        "reference",
        "category_display",
        "status",
        "confirmed_at",
        "expires_at",
        "created_at",
        "status_changed_at",
        "subject_statement",
        "text_scrubbed_at",
        "related_cases",
        "ring_display",
    )
    readonly_fields = fields
    inlines = (CaseIdentifierInline, CaseDisputeInline)
    date_hierarchy = "created_at"

    @admin.display(description=gettext_lazy("member"), ordering="member__code")
    def member_code(self, obj):
        return obj.member.code

    @admin.display(description=gettext_lazy("member"))
    def member_display(self, obj):
        return format_html(
            '<a href="{}">{}</a>', admin_url(obj.member, "change", obj.member_id), obj.member
        )

    @admin.display(description=gettext_lazy("Other cases with these identifiers"))
    def related_cases(self, obj):
        from registry.admin.disputes import related_cases

        others = related_cases(obj)
        if not others:
            return _("none")
        return format_html_join(
            mark_safe("<br>"),  # a constant separator: nothing to escape
            '<a href="{}">{} · {}</a> <span class="quiet">{}</span>',
            (
                (admin_url(c, "change", c.pk), c.member.code, c.reference, c.get_status_display())
                for c in others
            ),
        )

    @admin.display(description=gettext_lazy("ring"))
    def ring_display(self, obj):
        from registry.admin.rings import ring_link

        return ring_link(obj.pk)

    def audit_search_term(self, obj):
        return str(obj.pk)

    @admin.display(description=gettext_lazy("case"), ordering="id")
    def short_id(self, obj):
        # The tail: ids made the same day share their first (time) digits.
        return format_html("<code>{}</code>", id_tail(obj.pk))

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj):
        return status_pill(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("category"), ordering="category")
    def category_display(self, obj):
        return category_label(obj.category_id, obj.category.name)

    def get_search_results(self, request, queryset, search_term):
        """A fingerprint or a case id finds exactly that; other terms search the member
        code and the reference. Every search is audited: asking "is this person listed?" by
        fingerprint is a lookup, as it is for members through the API."""
        term = search_term.strip().lower()
        if not term:
            return super().get_search_results(request, queryset, search_term)
        if FINGERPRINT_RE.match(term):
            _audit_search(request, "fingerprint", term)
            return queryset.filter(identifiers__fingerprint=term).distinct(), False
        try:
            case_id = uuid.UUID(term)
        except ValueError:
            case_id = None
        if case_id is not None:
            _audit_search(request, "case", str(case_id))
            return queryset.filter(pk=case_id), False
        # The free text is not kept: an officer may have typed a raw identifier.
        _audit_search(request, "text", "")
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_id = id_filter(queryset, term)  # a part of an id, as lists show it
        if by_id is not None:
            found = found | queryset.filter(pk__in=by_id.values("pk"))
        return found, may_have_duplicates

    def has_add_permission(self, request):
        return False  # cases arrive through the API only

    def has_change_permission(self, request, obj=None):
        return False  # no field is edited by hand; see withdraw_view

    def has_withdraw_permission(self, request):
        return request.user.has_perm("registry.change_case")

    def object_tools(self, request, obj):
        if obj.status in LIVE_CASE_STATUSES and self.has_withdraw_permission(request):
            return [
                Tool(
                    _("Withdraw on the member's request"),
                    admin_url(obj, "withdraw", obj.pk),
                    danger=True,
                )
            ]
        return []

    def get_urls(self):
        own = [
            self.view_path("<uuid:pk>/withdraw/", self.withdraw_view, "withdraw"),
        ]
        return own + super().get_urls()

    def withdraw_view(self, request, pk):
        case = get_object_or_404(Case, pk=pk)
        require(self.has_withdraw_permission(request))
        form = WithdrawCaseForm(posted(request))

        def withdraw():
            case_withdraw(
                actor=on_behalf_of(request, case.member),
                case_id=case.pk,
                reason=form.cleaned_data["reason"],
            )
            return _("Case withdrawn; its identifiers were purged.")

        if done := self.form_action(request, form, case, withdraw):
            return done
        return self.form_page(
            request,
            title=_("Withdraw case"),
            form=form,
            obj=case,
            intro=_(
                "Only on the reporting member's written request. The case leaves the "
                "registry and its identifiers are deleted at once; an undecided dispute "
                "of the case is closed as upheld."
            ),
            submit_label=_("Withdraw case"),
            danger=True,
        )


def _audit_search(request, by: str, value: str) -> None:
    audit_record(
        actor=actor_for(request),
        action=AuditAction.ADMIN_CASES_SEARCHED,
        object_type=by if value else "case",
        object_id=value,
        details={"by": by},
    )


class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ("retention_days",)


@admin.register(Category, site=site)
class CategoryAdmin(RegistryModelAdmin):
    list_display = ("code", "label", "retention_display")
    form = CategoryForm
    fields = ("code", "name", "retention_days")
    readonly_fields = ("code", "name")

    @admin.display(description=gettext_lazy("name"), ordering="name")
    def label(self, obj):
        return category_label(obj.code, obj.name)

    @admin.display(description=gettext_lazy("retention"), ordering="retention_days")
    def retention_display(self, obj):
        return format_html(
            "{} <span class='quiet'>({})</span>",
            _("%(days)d days") % {"days": obj.retention_days},
            _("about %(years).1f years") % {"years": obj.retention_days / 365.25},
        )

    def has_add_permission(self, request):
        return False  # the categories are part of the contract with members

    def save_model(self, request, obj, form, change):
        from registry.services.categories import category_set_retention

        redated = category_set_retention(
            actor=actor_for(request),
            category=obj.pk,
            retention_days=form.cleaned_data["retention_days"],
        )
        messages.info(request, _("%(count)d live case(s) re-dated.") % {"count": redated})

    def object_tools(self, request, obj):
        return [
            Tool(
                _("Cases of this category"),
                admin_url(Case, "changelist") + f"?category__code__exact={obj.pk}",
            )
        ]

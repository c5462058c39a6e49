"""Members: onboarding, suspension, rate limits and quotas, contact addresses, API keys.

Every change goes through an audited service (registry/services/members.py, api_keys.py);
a new key's secret is shown once, on the page that issued it, and never again."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.admin.common import (
    CHOICE_ERRORS,
    RegistryModelAdmin,
    Tool,
    actor_for,
    admin_url,
    no_store,
    posted,
    refuse_raw_identifiers,
    related_filter,
    report_error,
    require,
    scope_labels,
    status_pill,
)
from registry.admin.confirmations import CONFIRMATION_FIELD, revoke_confirmed, revoke_token
from registry.admin.dashboard import THROTTLED_DAYS, refusals_url
from registry.admin.quality import (
    league_view,
    may_view_quality,
    member_flag,
    member_quality_context,
)
from registry.admin.site import site
from registry.errors import RegistryError, ValidationFailed
from registry.models import MEMBER_SCOPES, ApiKey, LimitScope, Member, Scope
from registry.selectors.abuse import last_refused_at
from registry.selectors.dashboard import member_monitoring
from registry.selectors.usage import member_signals, usage_alerts
from registry.services.api_keys import api_key_issue, api_key_revoke
from registry.services.members import (
    AUDITORS_GROUP,
    OFFICERS_GROUP,
    member_create,
    member_set_dispute_quota,
    member_set_limit,
    member_set_status,
    member_set_velocity_alert_threshold,
    member_update,
)

MEMBER_SCOPE_CHOICES = [(s.value, s.label) for s in MEMBER_SCOPES]


# --- Forms ------------------------------------------------------------------------------


class MemberStatusForm(forms.Form):
    rationale = forms.CharField(
        label=gettext_lazy("Rationale"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=format_lazy(
            "{} {}",
            gettext_lazy("Recorded in the audit trail by its length only."),
            gettext_lazy("Shown on the member's page while it is suspended."),
        ),
        validators=[refuse_raw_identifiers],
    )


class MemberLimitForm(forms.Form):
    scope = forms.ChoiceField(
        label=gettext_lazy("Scope"), choices=LimitScope.choices, error_messages=CHOICE_ERRORS
    )
    per_minute = forms.IntegerField(label=gettext_lazy("Units per minute"), min_value=1)
    per_day = forms.IntegerField(label=gettext_lazy("Units per day"), min_value=1)


class IssueKeyForm(forms.Form):
    member = forms.ModelChoiceField(
        label=gettext_lazy("Member"), queryset=Member.objects.all(), required=False
    )
    officer = forms.ModelChoiceField(
        label=gettext_lazy("Compliance officer"),
        queryset=get_user_model()
        .objects.filter(
            is_staff=True, is_active=True, groups__name__in=(OFFICERS_GROUP, AUDITORS_GROUP)
        )
        .distinct(),
        required=False,
    )
    scopes = forms.MultipleChoiceField(
        label=gettext_lazy("Scopes"),
        error_messages=CHOICE_ERRORS,
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "A member's key: lookup, submit and/or dispute. An officer's key: compliance "
            "(or read only); an auditor's key: read only."
        ),
    )
    name = forms.CharField(
        label=gettext_lazy("Label"),
        max_length=100,
        required=False,
        validators=[refuse_raw_identifiers],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["officer"].help_text = _(
            "For a compliance system's key: leave the member empty. Another officer issues "
            "yours; it expires after %(days)d days."
        ) % {"days": settings.REGISTRY_COMPLIANCE_KEY_DAYS}

    def clean(self):
        data = super().clean()
        if bool(data.get("member")) == bool(data.get("officer")):
            raise forms.ValidationError(
                _("Choose either a member or a compliance officer as the key's owner.")
            )
        return data


def allowed_scopes(data) -> set[str]:
    """The scopes the chosen owner's key may carry (as the service checks them)."""
    from registry.services.api_keys import officer_allowed_scopes

    if data.get("member"):
        return {s.value for s in MEMBER_SCOPES}
    return officer_allowed_scopes(set(data["officer"].groups.values_list("name", flat=True)))


def key_state_pill(key: ApiKey) -> str:
    """What the API does with the key now: a suspended member's keys are refused too."""
    if key.revoked_at is not None:
        return status_pill("suspended", _("revoked"))
    if key.member_id and key.member.status == Member.Status.SUSPENDED:
        return status_pill("suspended", _("suspended with the member"))
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return status_pill("expired", _("expired"))
    return status_pill("active", _("in use"))


def last_status_change(member: Member):
    """The audit event that set the member's current status (who and when), if any."""
    from registry.models import AuditEvent

    return (
        AuditEvent.objects.filter(
            object_type="member", object_id=member.code, action=f"member.{member.status}"
        )
        .order_by("-id")
        .first()
    )


# --- Members ------------------------------------------------------------------------------


@admin.register(Member, site=site)
class MemberAdmin(RegistryModelAdmin):
    list_display = (
        "code",
        "name",
        "status_display",
        "quality_flag",
        "contact_email",
        "active_keys",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("code", "name", "contact_email")
    change_form_template = "registry/admin/member_change_form.html"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("code", "name", "contact_email")
        return (
            "code",
            "name",
            "contact_email",
            "dispute_quota_per_day",
            "velocity_alert_threshold",
            "status",
            "throttled_recently",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("code", "status", "throttled_recently", "created_at")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj):
        return status_pill(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("active keys"), ordering="_active_keys")
    def active_keys(self, obj):
        return obj._active_keys

    @admin.display(description=gettext_lazy("quality"))
    def quality_flag(self, obj):
        return member_flag(obj._viewing_request, obj.pk)

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        if settings.REGISTRY_ROLE != "registry" or not may_view_quality(request.user):
            shown.remove("quality_flag")  # a custodian holds no cases
        return shown

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        for member in changelist.result_list:  # the flag column reads the (cached) report
            member._viewing_request = request
        return changelist

    def get_object(self, request, object_id, from_field=None):
        # The display methods below get only the object; it carries who is looking (the
        # ModelAdmin is shared by every request, so it must not hold the request itself).
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._viewing_actor = actor_for(request)
        return obj

    @admin.display(description=gettext_lazy("Throttled recently"))
    def throttled_recently(self, obj):
        """Whether the member ran into its rate limit or quota lately (a sweep shows up
        here as well as on the dashboard), with a link to the refusals."""
        since = timezone.now() - timedelta(days=THROTTLED_DAYS)
        last = last_refused_at(actor=obj._viewing_actor, member_id=obj.pk, since=since)
        if last is None:
            return _("no (not in the last %(days)d days)") % {"days": THROTTLED_DAYS}
        when = date_format(timezone.localtime(last), "DATETIME_FORMAT")
        return format_html(
            '<span class="registry-throttled-flag">{}</span> · <a href="{}">{}</a>',
            _("yes (last at %(time)s)") % {"time": when},
            refusals_url(obj.pk),
            _("Show the refusals in the audit trail"),
        )

    def save_model(self, request, obj, form, change):
        actor = actor_for(request)
        if change:
            member_update(
                actor=actor, member_id=obj.pk, name=obj.name, contact_email=obj.contact_email
            )
            if "dispute_quota_per_day" in form.changed_data:
                member_set_dispute_quota(
                    actor=actor, member_id=obj.pk, per_day=obj.dispute_quota_per_day
                )
            if "velocity_alert_threshold" in form.changed_data:
                member_set_velocity_alert_threshold(
                    actor=actor, member_id=obj.pk, threshold=obj.velocity_alert_threshold
                )
            return
        created = member_create(
            actor=actor, code=obj.code, name=obj.name, contact_email=obj.contact_email
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def extra_change_context(self, request, obj):
        """Limits and keys, shown (not edited) on the member's page: each changes through
        its own audited action. The usage signals: today against the member's median. Its
        quality beside the consortium's median (registry/admin/quality.py)."""
        actor = actor_for(request)
        quality = (
            member_quality_context(request, obj.pk) if settings.REGISTRY_ROLE == "registry" else {}
        )
        return {
            **quality,
            "member_signals": member_signals(
                actor=actor, member_id=obj.pk, day=timezone.localdate()
            ),
            "member_alerts": usage_alerts(
                actor=actor,
                since=timezone.now() - timedelta(days=30),
                member_code=obj.code,
            ),
            "member_monitoring": member_monitoring(member_id=obj.pk),
            "member_limits": list(obj.limits.order_by("scope")),
            "member_keys": [
                (key, key_state_pill(key), scope_labels(key.scopes))
                for key in obj.api_keys.select_related("member").order_by("-created_at")
            ],
            "suspension": (
                last_status_change(obj) if obj.status == Member.Status.SUSPENDED else None
            ),
            "default_limits": (
                settings.REGISTRY_DEFAULT_RATE_PER_MINUTE,
                settings.REGISTRY_DEFAULT_QUOTA_PER_DAY,
            ),
        }

    def object_tools(self, request, obj):
        if not self.has_change_permission(request, obj):
            return []
        tools = [Tool(_("Set rate limit"), admin_url(obj, "limit", obj.pk))]
        if obj.is_active:
            tools.append(Tool(_("Suspend"), admin_url(obj, "suspend", obj.pk), danger=True))
        else:
            tools.append(Tool(_("Reactivate"), admin_url(obj, "reactivate", obj.pk)))
        if request.user.has_perm("registry.add_apikey"):
            tools.append(Tool(_("Issue API key"), admin_url(ApiKey, "add") + f"?member={obj.pk}"))
        return tools

    def get_urls(self):
        own = [
            self.view_path("<int:pk>/suspend/", self.suspend_view, "suspend"),
            self.view_path("<int:pk>/reactivate/", self.reactivate_view, "reactivate"),
            self.view_path("<int:pk>/limit/", self.limit_view, "limit"),
            self.view_path("quality/", self.quality_view, "quality"),
        ]
        return own + super().get_urls()

    def suspend_view(self, request, pk):
        return self._status_view(request, pk, Member.Status.SUSPENDED)

    def reactivate_view(self, request, pk):
        return self._status_view(request, pk, Member.Status.ACTIVE)

    def _status_view(self, request, pk, status):
        member = get_object_or_404(Member, pk=pk)
        require(self.has_change_permission(request, member))
        suspending = status == Member.Status.SUSPENDED
        form = MemberStatusForm(posted(request))

        def set_status():
            member_set_status(
                actor=actor_for(request),
                member=member,
                status=status,
                rationale=form.cleaned_data["rationale"],
            )
            return _("%(member)s is now %(status)s.") % {
                "member": member.code,
                "status": member.get_status_display(),
            }

        if done := self.form_action(request, form, member, set_status):
            return done
        return self.form_page(
            request,
            title=_("Suspend member") if suspending else _("Reactivate member"),
            intro=(
                _(
                    "A suspended member's API keys stop working at once; its cases stay in "
                    "the registry."
                )
                if suspending
                else _("The member's unrevoked API keys work again at once.")
            ),
            form=form,
            obj=member,
            submit_label=_("Suspend") if suspending else _("Reactivate"),
            danger=suspending,
        )

    def quality_view(self, request):
        if settings.REGISTRY_ROLE != "registry":
            raise Http404  # a custodian holds no cases
        return league_view(request, self.admin_site)

    def limit_view(self, request, pk):
        member = get_object_or_404(Member, pk=pk)
        require(self.has_change_permission(request, member))
        form = MemberLimitForm(
            request.POST or None,
            initial={
                "scope": LimitScope.LOOKUP,
                "per_minute": settings.REGISTRY_DEFAULT_RATE_PER_MINUTE,
                "per_day": settings.REGISTRY_DEFAULT_QUOTA_PER_DAY,
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                member_set_limit(actor=actor_for(request), member=member, **form.cleaned_data)
            except RegistryError as exc:
                report_error(request, exc)
            else:
                messages.success(
                    request,
                    _("Rate limit for %(scope)s set.") % {"scope": form.cleaned_data["scope"]},
                )
                return HttpResponseRedirect(admin_url(member, "change", member.pk))
        return self.form_page(
            request,
            title=_("Set rate limit"),
            form=form,
            obj=member,
            intro=_(
                "Limits count units of work: an evaluate costs one unit per element, a lookup "
                "one per identifier, any other call one. Defaults: %(minute)d units per minute "
                "and %(day)d per day, per scope."
            )
            % {
                "minute": settings.REGISTRY_DEFAULT_RATE_PER_MINUTE,
                "day": settings.REGISTRY_DEFAULT_QUOTA_PER_DAY,
            },
            submit_label=_("Save"),
        )


# --- API keys -------------------------------------------------------------------------------


@admin.register(ApiKey, site=site)
class ApiKeyAdmin(RegistryModelAdmin):
    list_display = (
        "key_display",
        "owner",
        "name",
        "scopes_display",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_display",
    )
    list_filter = (
        ("revoked_at", admin.EmptyFieldListFilter),
        ("member", related_filter(gettext_lazy("member"))),
    )
    search_fields = ("prefix", "name", "member__code", "officer__username")
    list_select_related = ("member", "officer")
    fields = (
        "key_display",
        "owner",
        "name",
        "scopes_display",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke_selected",)

    @admin.display(description=gettext_lazy("key"), ordering="prefix")
    def key_display(self, obj):
        # Only the prefix: the secret was shown once, when the key was issued.
        return str(obj)

    @admin.display(description=gettext_lazy("scopes"))
    def scopes_display(self, obj):
        return scope_labels(obj.scopes)

    @admin.display(description=gettext_lazy("owner"))
    def owner(self, obj):
        if obj.member_id:
            return obj.member.code
        return _("officer %(username)s") % {"username": obj.officer.get_username()}

    @admin.display(description=gettext_lazy("state"), ordering="revoked_at")
    def revoked_display(self, obj):
        return key_state_pill(obj)

    def has_change_permission(self, request, obj=None):
        return False  # keys are issued and revoked, never edited

    def audit_search_term(self, obj):
        return obj.prefix  # its issue and revocation, and every call made with it

    def has_revoke_permission(self, request, obj=None):
        return request.user.has_perm("registry.change_apikey")

    def object_tools(self, request, obj):
        if obj.revoked_at is None and self.has_revoke_permission(request):
            return [Tool(_("Revoke"), admin_url(obj, "revoke", obj.pk), danger=True)]
        return []

    def get_urls(self):
        own = [
            self.view_path("<int:pk>/revoke/", self.revoke_view, "revoke"),
        ]
        return own + super().get_urls()

    @admin.action(description=gettext_lazy("Revoke the selected keys"), permissions=("revoke",))
    def revoke_selected(self, request, queryset):
        """First a summary of the keys to revoke; only the summary's own form revokes them,
        with its confirmation token for exactly the selected keys (a POST made by hand, or
        with another selection, gets the summary again and revokes nothing)."""
        keys = list(queryset.filter(revoked_at__isnull=True).select_related("member", "officer"))
        selected = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        if not revoke_confirmed(request, selected):
            if request.POST.get(CONFIRMATION_FIELD):
                messages.warning(
                    request, _("The confirmation has lapsed or does not match: confirm again.")
                )
            context = {
                **self.admin_site.each_context(request),
                "title": _("Revoke the selected keys?"),
                "opts": self.opts,
                "keys": keys,
                "already_revoked": queryset.count() - len(keys),
                "selected": selected,
                "confirmation_field": CONFIRMATION_FIELD,
                "confirmation": revoke_token(request.user, selected),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "cancel_url": admin_url(ApiKey, "changelist"),
            }
            return TemplateResponse(request, "registry/admin/api_key_revoke_confirm.html", context)
        actor = actor_for(request)
        for key in keys:
            api_key_revoke(actor=actor, api_key=key)
        messages.success(request, _("%(count)d key(s) revoked.") % {"count": len(keys)})
        return None

    def revoke_view(self, request, pk):
        key = get_object_or_404(ApiKey, pk=pk)
        require(self.has_revoke_permission(request))
        form = forms.Form(posted(request))

        def revoke():
            api_key_revoke(actor=actor_for(request), api_key=key)
            return _("Key %(key)s revoked.") % {"key": str(key)}

        if done := self.form_action(request, form, key, revoke):
            return done
        return self.form_page(
            request,
            title=_("Revoke API key"),
            form=form,
            obj=key,
            intro=_("The key stops working on its next call. This cannot be undone."),
            submit_label=_("Revoke"),
            danger=True,
        )

    def add_view(self, request, form_url="", extra_context=None):
        """Issue a key through the service and show its secret once, on this response."""
        require(self.has_add_permission(request))
        initial = {"scopes": [s.value for s in MEMBER_SCOPES]}
        if request.GET.get("member", "").isdigit():
            initial["member"] = request.GET["member"]
        form = IssueKeyForm(posted(request), initial=initial)
        if request.method == "POST" and form.is_valid():
            allowed = allowed_scopes(form.cleaned_data)
            try:
                if not set(form.cleaned_data["scopes"]) <= allowed:
                    # The service refuses it too; here the refusal names the scopes in words.
                    raise ValidationFailed(
                        _("This owner's key may carry only: %(scopes)s.")
                        % {"scopes": scope_labels(sorted(allowed)) or "—"}
                    )
                issued = api_key_issue(actor=actor_for(request), **form.cleaned_data)
            except RegistryError as exc:
                report_error(request, exc)
            else:
                return self._issued_page(request, issued)
        return self.form_page(
            request,
            title=_("Issue API key"),
            form=form,
            intro=_(
                "The key is shown once, on the next page. The registry keeps only a hash of it."
            ),
            submit_label=_("Issue key"),
        )

    def _issued_page(self, request, issued):
        context = {
            **self.admin_site.each_context(request),
            "title": _("API key issued"),
            "opts": self.opts,
            "api_key": issued.api_key,
            "scope_labels": scope_labels(issued.api_key.scopes),
            "raw_key": issued.raw_key,
            "key_url": admin_url(issued.api_key, "change", issued.api_key.pk),
        }
        return no_store(TemplateResponse(request, "registry/admin/api_key_issued.html", context))

"""The compliance officers' admin site: password + TOTP sign-in, lock-out shared with
django-axes, the dashboard on the index page and the site-wide views (subject access)."""

from django import forms
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.urls import path
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from registry.audit_actions import AuditAction


class OfficerLoginForm(OTPAdminAuthenticationForm):
    """Username, password and the 6-digit code in one step.

    django-otp asks the user to pick a device in a second round trip; an officer has exactly
    one authenticator, so it is chosen for them. A wrong code counts as a failed sign-in for
    django-axes, so guessing codes locks the account out like guessing passwords does."""

    otp_token = forms.CharField(
        label=_("Authenticator code"),
        required=False,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "8"}
        ),
    )
    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": _("Enter the 6-digit code from your authenticator app."),
        "invalid_token": _("That code is not valid. Enter the current code from your app."),
        # django-otp's own are not translated into Chinese.
        "n_failed_attempts": ngettext_lazy(
            "Code checks are paused after %(failure_count)d wrong code. Wait a little and "
            "enter the current code again.",
            "Code checks are paused after %(failure_count)d wrong codes. Wait a little and "
            "enter the current code again.",
            "failure_count",
        ),
        "verification_not_allowed": _("Code checks are paused for now. Try again shortly."),
    }

    def clean(self):
        cleaned = super().clean()
        # Sign-ins are on the audit trail, as every officer's action is.
        _audit_sign_in(self.get_user(), AuditAction.OFFICER_SIGNED_IN, {})
        return cleaned

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is not None:
            return device
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            raise forms.ValidationError(
                _(
                    "This account has no second factor yet. An administrator sets one up "
                    "with: manage.py create_officer USERNAME --reset-totp"
                ),
                code="no_device",
            )
        return devices[0] if len(devices) == 1 else None

    def clean_otp(self, user):
        try:
            super().clean_otp(user)
        except forms.ValidationError:
            if user is not None and self.cleaned_data.get("otp_token"):
                _audit_sign_in(user, AuditAction.OFFICER_CODE_REFUSED, {"reason": "code"})
                user_login_failed.send(
                    sender=type(self),
                    credentials={"username": user.get_username()},
                    request=self.request,
                )
            raise


def _audit_sign_in(user, action, details: dict) -> None:
    from registry.actors import Actor
    from registry.services.audit import audit_record

    audit_record(
        actor=Actor.for_officer(user),
        action=action,
        object_type="user",
        object_id=user.get_username(),
        details=details,
    )


class RegistryAdminSite(OTPAdminSite):
    site_header = _("Consortium fraud registry")
    site_title = _("Fraud registry")
    index_title = _("Compliance desk")
    index_template = "registry/admin/index.html"
    login_form = OfficerLoginForm
    login_template = "registry/admin/login.html"
    enable_nav_sidebar = True
    site_url = None  # no "View site": the registry has no public pages, only the API

    def __init__(self, name: str = "admin"):
        super().__init__(name)

    def get_urls(self):
        own = [
            path(
                "subject-access/",
                self.admin_view(self.subject_access),
                name="registry_subject_access",
            ),
            path(
                "regulator-report/",
                self.admin_view(self.regulator_report),
                name="registry_regulator_report",
            ),
        ]
        return own + super().get_urls()

    def subject_access(self, request):
        from registry.admin.subject_access import subject_access_view

        return subject_access_view(request, self)

    def regulator_report(self, request):
        from registry.admin.report import regulator_report_view

        return regulator_report_view(request, self)

    def index(self, request, extra_context=None):
        if settings.REGISTRY_ROLE == "custodian":
            # A custodian holds members, keys and quotas only: Django's plain index of them.
            self.index_template = None
            return super().index(request, extra_context=extra_context)
        from registry.admin.dashboard import dashboard_context

        context = {**dashboard_context(request), **(extra_context or {})}
        return super().index(request, extra_context=context)

    def each_context(self, request):
        from registry.admin.quality import may_view_quality
        from registry.admin.report import may_download_report
        from registry.admin.subject_access import may_use_subject_access

        context = super().each_context(request)
        context["is_custodian"] = settings.REGISTRY_ROLE == "custodian"
        context["may_use_subject_access"] = (
            settings.REGISTRY_ROLE == "registry" and may_use_subject_access(request.user)
        )
        context["may_download_report"] = (
            settings.REGISTRY_ROLE == "registry" and may_download_report(request.user)
        )
        context["may_view_quality"] = settings.REGISTRY_ROLE == "registry" and may_view_quality(
            request.user
        )
        return context


# The one instance. `django.contrib.admin.site` resolves to it through RegistryAdminConfig's
# `default_site = "registry.admin.site.get_site"` (a callable returning the site), so the
# registry's ModelAdmins and those of Django's own apps end up on the same site whatever
# imports first.
site = RegistryAdminSite()


def get_site() -> RegistryAdminSite:
    return site

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = _("Fraud registry")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)


class RegistryAdminConfig(admin_apps.AdminConfig):
    """The admin with the registry's own site (TOTP sign-in, dashboard) as `admin.site`.
    (Imported as a module attribute and `default = False` so that Django still picks
    RegistryConfig for the "registry" app.)"""

    default = False

    default_site = "registry.admin.site.get_site"

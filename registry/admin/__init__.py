"""The compliance officers' admin (Django admin on RegistryAdminSite, see site.py).

Importing this package registers every ModelAdmin on the project's admin site; Django's
admin autodiscovery does so at start-up."""

from registry.admin import (  # noqa: F401
    audit,
    cases,
    dashboard,
    disputes,
    jobs,
    members,
    subject_access,
)

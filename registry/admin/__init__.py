"""The compliance officers' admin (Django admin on RegistryAdminSite, see site.py).

Importing this package registers every ModelAdmin on the project's admin site; Django's
admin autodiscovery does so at start-up. A custodian's admin has only what a custodian holds:
members, their keys and quotas, and its audit trail."""

from django.conf import settings

from registry.admin import audit, members  # noqa: F401

if settings.REGISTRY_ROLE == "registry":
    from registry.admin import (  # noqa: F401
        cases,
        dashboard,
        disputes,
        jobs,
        rings,
        subject_access,
    )

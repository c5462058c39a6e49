"""Routes of a custodian (REGISTRY_ROLE=custodian): the OPRF endpoints, health, the schema and
the admin for its own officers. No cases, lookups or disputes: a custodian holds one key share
and the member keys that may use it, nothing else."""

from django.contrib import admin
from django.urls import path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from registry.api import health, oprf

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(
        "api/v1/schema/",
        SpectacularAPIView.as_view(
            authentication_classes=[], permission_classes=[AllowAny], urlconf=__name__
        ),
        name="schema",
    ),
    path("api/v1/oprf/keys", oprf.OprfKeysApi.as_view(), name="oprf-keys"),
    path("api/v1/oprf/evaluate", oprf.OprfEvaluateApi.as_view(), name="oprf-evaluate"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("admin/", admin.site.urls),
]

handler404 = "registry.api.problems.handler404"
handler500 = "registry.api.problems.handler500"

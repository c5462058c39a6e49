"""/api/v1/ routes. Each area adds its views here."""

from django.urls import path

from registry.api import audit, oprf

urlpatterns = [
    path("oprf/evaluate", oprf.OprfEvaluateApi.as_view(), name="oprf-evaluate"),
    path("audit-events", audit.AuditEventListApi.as_view(), name="audit-events"),
]

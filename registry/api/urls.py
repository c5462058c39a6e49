"""/api/v1/ routes. Each area adds its views here."""

from django.urls import path

from registry.api import (
    audit,
    cases,
    compliance,
    disputes,
    lookups,
    oprf,
    schema_extensions,  # noqa: F401  (OpenAPI for custom fields)
    watches,
    webhooks,
)

urlpatterns = [
    path("oprf/keys", oprf.OprfKeysApi.as_view(), name="oprf-keys"),
    path("oprf/evaluate", oprf.OprfEvaluateApi.as_view(), name="oprf-evaluate"),
    path("audit-events", audit.AuditEventListApi.as_view(), name="audit-events"),
    path("cases", cases.CaseCollectionApi.as_view(), name="cases"),
    path("cases/batch", cases.CaseBatchApi.as_view(), name="cases-batch"),
    path("cases/<uuid:case_id>", cases.CaseDetailApi.as_view(), name="case"),
    path("cases/<uuid:case_id>/withdraw", cases.CaseWithdrawApi.as_view(), name="case-withdraw"),
    path("lookups", lookups.LookupApi.as_view(), name="lookups"),
    path("disputes", disputes.DisputeListCreateApi.as_view(), name="disputes"),
    path("disputes/<uuid:dispute_id>", disputes.DisputeDetailApi.as_view(), name="dispute"),
    path(
        "disputes/<uuid:dispute_id>/response",
        disputes.DisputeResponseApi.as_view(),
        name="dispute-response",
    ),
    path(
        "disputes/<uuid:dispute_id>/decision",
        disputes.DisputeDecisionApi.as_view(),
        name="dispute-decision",
    ),
    path("watches", watches.WatchCollectionApi.as_view(), name="watches"),
    path("watches/<uuid:watch_id>", watches.WatchDetailApi.as_view(), name="watch"),
    path("alerts", watches.AlertListApi.as_view(), name="alerts"),
    path("webhook-endpoints", webhooks.EndpointCollectionApi.as_view(), name="webhook-endpoints"),
    path(
        "webhook-endpoints/<uuid:endpoint_id>",
        webhooks.EndpointDetailApi.as_view(),
        name="webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<uuid:endpoint_id>/test",
        webhooks.EndpointTestApi.as_view(),
        name="webhook-endpoint-test",
    ),
    path("compliance/subject-access", compliance.SubjectAccessApi.as_view(), name="subject-access"),
]

"""Liveness and readiness. /readyz names the dependency that failed."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

from registry.services.audit import audit_seal_lag_seconds
from registry.services.partitions import partitions_months_ahead


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return type(exc).__name__


def _check_broker() -> str | None:
    # A fresh connection to the configured broker (not the app's pool): the answer is about
    # the broker now, and a probe never leaves a broken connection in the publishers' pool.
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=2,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return None
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def readyz(request):
    failures = {}
    if (error := _check_database()) is not None:
        failures["database"] = error
    if (error := _check_broker()) is not None:
        failures["broker"] = error
    details = {}
    if "database" not in failures:
        lag = audit_seal_lag_seconds()
        details["audit_seal_lag_seconds"] = round(lag, 1)
        details["audit_seal_lag_alarm"] = lag > settings.REGISTRY_AUDIT_SEAL_LAG_ALARM_SECONDS
        # Writes never fail for want of a partition (DEFAULT partitions catch them), but the
        # maintenance job is not keeping up: an operator should look.
        ahead = partitions_months_ahead()
        details["partition_months_ahead"] = ahead
        details["partition_alarm"] = ahead < 1
    if failures:
        body = {
            "type": "https://registry.example/problems/service_unavailable",
            "title": "Not ready",
            "status": 503,
            "code": "service_unavailable",
            "detail": "Unavailable: " + ", ".join(sorted(failures)),
            "failed": failures,
            **details,
        }
        response = JsonResponse(body, status=503, content_type="application/problem+json")
        response["Retry-After"] = "5"
        return response
    return JsonResponse({"status": "ready", **details})

"""RFC 9457 problem details for every error the API returns: the registry's own errors,
DRF's (authentication, permission, parsing, media type, method, throttling, validation),
Django's 404/500 on API paths, and database outages (503)."""

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.views.defaults import page_not_found, server_error
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.response import Response

from registry import errors

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# DRF exception class -> (contract code, status)
_DRF_CODES: list[tuple[type, str]] = [
    (drf.NotAuthenticated, "unauthenticated"),
    (drf.AuthenticationFailed, "unauthenticated"),
    (drf.PermissionDenied, "forbidden_scope"),
    (drf.NotFound, "not_found"),
    (drf.MethodNotAllowed, "method_not_allowed"),
    (drf.NotAcceptable, "not_acceptable"),
    (drf.UnsupportedMediaType, "unsupported_media_type"),
    (drf.ParseError, "malformed_json"),
    (drf.Throttled, "rate_limited"),
    (drf.ValidationError, "validation_error"),
]


def problem(status: int, code: str, title: str, detail: str = "", *, errors_list=None) -> dict:
    body = {
        "type": f"https://registry.example/problems/{code}",
        "title": str(title),
        "status": status,
        "detail": str(detail or title),
        "code": code,
    }
    if errors_list:
        body["errors"] = errors_list
    return body


def problem_response(body: dict, headers: dict | None = None) -> Response:
    response = Response(body, status=body["status"], headers=headers or {})
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_json_response(body: dict, headers: dict | None = None) -> JsonResponse:
    """The same, outside DRF (Django's 404/500 handlers, middleware)."""
    response = JsonResponse(
        body,
        status=body["status"],
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_validation_errors(detail, pointer: str = "") -> list[dict]:
    """DRF's nested ValidationError detail -> the contract's list of {pointer, code, detail}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = pointer if key == "non_field_errors" else f"{pointer}/{key}"
            out.extend(flatten_validation_errors(value, sub))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):  # ErrorDetail is a str
            return [_error_item(item, pointer or "/") for item in detail]
        out = []
        for index, value in enumerate(detail):
            out.extend(flatten_validation_errors(value, f"{pointer}/{index}"))
        return out
    return [_error_item(detail, pointer or "/")]


def _error_item(item, pointer: str) -> dict:
    code = getattr(item, "code", None) or "invalid"
    return {"pointer": pointer, "code": str(code), "detail": str(item)}


def registry_error_body(exc: errors.RegistryError) -> dict:
    return problem(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        errors_list=[e.as_dict() for e in exc.errors],
    )


def exception_handler(exc, context):
    headers = {}
    if isinstance(exc, errors.RegistryError):
        body = registry_error_body(exc)
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return problem_response(body, headers)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        body = problem(
            503,
            "service_unavailable",
            _("Service unavailable"),
            _("The database is unavailable; retry later."),
        )
        return problem_response(body, {"Retry-After": "5"})
    if isinstance(exc, DatabaseError):
        return None  # a real bug: let Django log it and answer 500 through handler500
    if not isinstance(exc, drf.APIException):
        return None
    return problem_response(_drf_problem(exc), _drf_headers(exc))


def _drf_problem(exc: drf.APIException) -> dict:
    code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "error")
    status = exc.status_code
    if code == "unauthenticated":
        status = 401
    if isinstance(exc, drf.ValidationError):
        items = flatten_validation_errors(exc.detail)
        raw = [i for i in items if i["code"] == "raw_pii_rejected"]
        if raw:
            return problem(
                400,
                "raw_pii_rejected",
                _("Raw personal data refused"),
                _("A field looks like a raw personal identifier; send tokens only."),
                errors_list=raw,
            )
        too_large = [i for i in items if i["code"] == "batch_too_large"]
        if too_large:
            return problem(
                400,
                "batch_too_large",
                _("Batch too large"),
                too_large[0]["detail"],
                errors_list=too_large,
            )
        return problem(
            400,
            "validation_error",
            _("Invalid request"),
            _("The request has invalid fields; see errors."),
            errors_list=items,
        )
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem(status, code, _title_for(code), detail)


def _drf_headers(exc: drf.APIException) -> dict:
    headers = {}
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="registry"'
    if isinstance(exc, drf.Throttled) and exc.wait:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    return headers


def _title_for(code: str) -> str:
    return {
        "unauthenticated": _("Authentication required"),
        "forbidden_scope": _("Missing scope"),
        "not_found": _("Not found"),
        "method_not_allowed": _("Method not allowed"),
        "not_acceptable": _("Not acceptable"),
        "unsupported_media_type": _("Unsupported media type"),
        "malformed_json": _("Malformed JSON"),
        "rate_limited": _("Too many requests"),
    }.get(code, _("Error"))


# Django-level handlers for paths DRF does not route (unknown URLs, crashes).
def handler404(request, exception=None):
    if not request.path.startswith("/api/"):
        return page_not_found(request, exception)
    body = problem(404, "not_found", _("Not found"), _("No such resource."))
    return problem_json_response(body)


def handler500(request):
    if not request.path.startswith("/api/"):
        return server_error(request)
    body = problem(
        500,
        "internal_error",
        _("Internal error"),
        _("An unexpected error occurred; it has been logged."),
    )
    return problem_json_response(body)


# For the OpenAPI schema: problem-details responses in extend_schema(responses=...).
class ProblemOutput(serializers.Serializer):
    """RFC 9457 problem details (application/problem+json)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.ListField(child=serializers.DictField(), required=False)


def problems(**descriptions: str) -> dict:
    """Problem-details responses for extend_schema: problems(_404="not_found", ...)."""
    return {
        (int(code.lstrip("_")), "application/problem+json"): OpenApiResponse(
            ProblemOutput, description=text
        )
        for code, text in descriptions.items()
    }


COMMON = {"_401": "unauthenticated", "_403": "forbidden_scope", "_429": "rate_limited"}

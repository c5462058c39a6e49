"""The member API's endpoints, from the URL resolver (registry/api/urls.py): the scopes each
one requires (the table the auth matrix checks), and their paths as the OpenAPI schema
writes them (what schemathesis and the no-echo tests walk)."""

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, reverse

from registry.api import urls as api_urls

MEMBER_SCOPES = frozenset({"lookup", "submit", "dispute"})
ALL_SCOPES = MEMBER_SCOPES | {"compliance", "compliance_read"}
OFFICER_READ = frozenset({"compliance", "compliance_read"})


@dataclass(frozen=True)
class Row:
    scopes: frozenset[str]  # any one of them grants access
    body: dict | None = None  # a valid body, so that only ownership can refuse
    # "case" | "dispute" | "watch" | "webhook_endpoint": the path names another's object
    owned_object: str | None = None


ENDPOINTS: dict[tuple[str, str], Row] = {
    ("oprf-keys", "get"): Row(ALL_SCOPES),
    ("oprf-evaluate", "post"): Row(MEMBER_SCOPES),
    ("audit-events", "get"): Row(ALL_SCOPES),
    ("cases", "get"): Row(frozenset({"submit"})),
    ("cases", "post"): Row(frozenset({"submit"})),
    ("cases-batch", "post"): Row(frozenset({"submit"})),
    ("case", "get"): Row(frozenset({"submit"}), owned_object="case"),
    ("case-withdraw", "post"): Row(
        frozenset({"submit"}), {"reason": "Reported in error."}, owned_object="case"
    ),
    ("lookups", "post"): Row(frozenset({"lookup"})),
    ("disputes", "get"): Row(frozenset({"dispute"}) | OFFICER_READ),
    ("disputes", "post"): Row(frozenset({"dispute"})),
    ("dispute", "get"): Row(frozenset({"dispute"}) | OFFICER_READ, owned_object="dispute"),
    ("dispute-response", "post"): Row(
        frozenset({"dispute"}),
        {"position": "maintain", "statement": "We maintain it."},
        owned_object="dispute",
    ),
    # Officers decide every dispute: there is no "another member's" dispute for them.
    ("dispute-decision", "post"): Row(frozenset({"compliance"})),
    ("subject-access", "get"): Row(OFFICER_READ),
    ("watches", "get"): Row(frozenset({"lookup"})),
    ("watches", "post"): Row(frozenset({"lookup"})),
    ("watch", "delete"): Row(frozenset({"lookup"}), owned_object="watch"),
    ("alerts", "get"): Row(frozenset({"lookup"})),
    ("webhook-endpoints", "get"): Row(frozenset({"lookup"})),
    ("webhook-endpoints", "post"): Row(frozenset({"lookup"})),
    ("webhook-endpoint", "delete"): Row(frozenset({"lookup"}), owned_object="webhook_endpoint"),
    ("webhook-endpoint-test", "post"): Row(frozenset({"lookup"}), owned_object="webhook_endpoint"),
}


def served_views() -> Iterator[tuple[URLPattern, str]]:
    """(URL pattern, HTTP method) of every API view the resolver knows."""
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern), pattern
        view = pattern.callback.view_class
        for method in view.http_method_names:
            if method not in ("options", "head") and hasattr(view, method):
                yield pattern, method


def resolved_endpoints() -> set[tuple[str, str]]:
    """(route name, HTTP method) of every API view."""
    return {(pattern.name, method) for pattern, method in served_views()}


def pattern_named(name: str) -> URLPattern:
    return next(p for p in api_urls.urlpatterns if p.name == name)


def path_of(name: str, object_id: str | None = None) -> str:
    pattern = pattern_named(name)
    kwargs = {key: object_id or str(uuid.uuid4()) for key in pattern.pattern.converters}
    return reverse(name, kwargs=kwargs)


def openapi_path(pattern: URLPattern) -> str:
    return "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def served_operations() -> list[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every view in registry/api/urls.py."""
    return sorted((method.upper(), openapi_path(pattern)) for pattern, method in served_views())


OPERATIONS = served_operations()


def officer_only(method: str, path: str) -> bool:
    pattern = next(p for p in api_urls.urlpatterns if path == openapi_path(p))
    view = pattern.callback.view_class()
    view.request = type("Request", (), {"method": method})()
    return set(view.required_scopes) <= OFFICER_READ

"""Bad input and attack: schemathesis against the served OpenAPI schema.

The schema is loaded from the application itself (GET /api/v1/schema/ through WSGI). Every
operation in it gets a bounded, derandomized set of generated requests, valid and invalid,
sent with a member key holding every member scope (or an officer key where only officers are
allowed). Every answer must be:
- not a server error (no 5xx, whatever the input),
- a status code the schema declares for the operation,
- in a content type, and with a body, that the schema declares for that status.

(The operations are parametrized from the URL resolver, and
`test_it_documents_exactly_the_routes_it_serves` ties them to the schema, so an endpoint
missing from either side fails. schemathesis' own pytest loader is not used: its lazy
fixture support breaks on pytest 9's test nodes.)
"""

import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from consortium.wsgi import application
from registry.api import urls as api_urls

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def served_operations() -> list[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every view in registry/api/urls.py."""
    found = []
    for pattern in api_urls.urlpatterns:
        view = pattern.callback.view_class
        path = "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        for method in view.http_method_names:
            if method not in ("options", "head") and hasattr(view, method):
                found.append((method.upper(), path))
    return sorted(found)


OPERATIONS = served_operations()


def officer_only(method: str, path: str) -> bool:
    pattern = next(p for p in api_urls.urlpatterns
                   if path == "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)))
    view = pattern.callback.view_class()
    view.request = type("Request", (), {"method": method})()
    return set(view.required_scopes) == {"compliance"}


@pytest.fixture
def api_schema(db):
    # Like Django's test client: keep the test's database connection (and its transaction)
    # open across requests instead of closing it at the end of each one.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_it_answers_every_generated_request_as_the_schema_says(api_schema, world, method, path):
    operation = api_schema[path][method]
    key = world.officer.raw_key if officer_only(method, path) else world.alice.raw_key
    headers = {"Authorization": f"Bearer {key}"}
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    answers_as_documented()


def test_it_documents_exactly_the_routes_it_serves(api_schema):
    documented = sorted(
        (op.method.upper(), op.path)
        for op in (result.ok() for result in api_schema.get_all_operations())
    )
    assert documented == OPERATIONS

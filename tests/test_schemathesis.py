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

from datetime import date, timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_client import oprf
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from consortium.wsgi import application
from tests.support.endpoints import OPERATIONS, officer_only
from tests.support.factories import case_payload, submit_case

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def in_test_transaction(app):
    """The WSGI app as Django's test client runs it: the test's database connection (and
    its transaction) stays open across requests instead of being closed after each one."""

    def wrapped(environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = app(environ, start_response)
            try:
                return list(response)
            finally:
                response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return wrapped


@pytest.fixture
def api_schema(db):
    return schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json", in_test_transaction(application)
    )


@pytest.fixture
def live_objects(world) -> dict[str, str]:
    """Real ids for the path parameters: alice's case, disputed by bob (so that alice, the
    caller, may read, respond and withdraw, and the officer may decide)."""
    payload = case_payload()
    case = submit_case(world.alice, **payload)
    filed = world.bob.post(
        "/api/v1/disputes",
        {"case_id": case["id"], "identifier": payload["identifiers"][0], "reason": "not_me"},
    )
    assert filed.status_code == 201, filed.content
    undisputed_payload = case_payload()
    undisputed = submit_case(world.carol, **undisputed_payload)
    watched = world.alice.post(
        "/api/v1/watches",
        {
            "identifiers": payload["identifiers"],
            "purpose": "loan_monitoring",
            "consent_reference": "C-1",
        },
    )
    endpoint = world.alice.post(
        "/api/v1/webhook-endpoints",
        {"url": "https://hooks.alice.example/registry", "events": ["case.reported"]},
    )
    assert watched.status_code == endpoint.status_code == 201
    return {
        "watch_id": watched.json()["watches"][0]["id"],
        "endpoint_id": endpoint.json()["id"],
        "case_id": case["id"],
        "dispute_id": filed.json()["id"],
        "undisputed_case_id": undisputed["id"],
        "undisputed_identifier": undisputed_payload["identifiers"][0],
    }


def realistic(case, live_objects: dict[str, str]):
    """Turn a generated valid-by-schema request into one the registry can accept: a known
    category, a past confirmation date, blinded elements that are curve points, a case that
    exists and one of its identifiers. (The schema cannot say which categories, cases and
    identifiers exist, or which 64-hex strings are points of the curve.)"""
    body = case.body if isinstance(case.body, dict) else {}
    if "case_id" in body:
        body["case_id"] = live_objects["undisputed_case_id"]
        if isinstance(body.get("identifier"), dict):
            body["identifier"] = dict(live_objects["undisputed_identifier"])
    items = body.get("cases") if isinstance(body.get("cases"), list) else [body]
    for item in items:
        if isinstance(item, dict) and "category" in item:
            item["category"] = "identity_theft"
            item["confirmed_at"] = (date.today() - timedelta(days=1)).isoformat()
    if "url" in body:  # a webhook endpoint: a public https URL, known event types
        body["url"] = "https://hooks.alice.example/registry"
        body["events"] = ["case.reported"]
    if isinstance(body.get("blinded_elements"), list):
        body["blinded_elements"] = [
            oprf.blind(f"phone\x00+86139{n:08d}".encode())[1].hex()
            for n in range(max(1, min(len(body["blinded_elements"]), 5)))
        ]
    return case


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_it_answers_every_generated_request_as_the_schema_says(
    api_schema, world, live_objects, method, path
):
    operation = api_schema[path][method]
    key = world.officer.raw_key if officer_only(method, path) else world.alice.raw_key
    headers = {"Authorization": f"Bearer {key}"}
    real_ids = {name: value for name, value in live_objects.items() if "{" + name + "}" in path}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real_ids).map(
            lambda case: realistic(case, live_objects)
        ),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    statuses = []

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case):
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    answers_as_documented()
    # The generated requests reached the real work, not only the validators.
    assert any(200 <= status < 300 for status in statuses), sorted(set(statuses))


def test_it_documents_exactly_the_routes_it_serves(api_schema):
    documented = sorted(
        (op.method.upper(), op.path)
        for op in (result.ok() for result in api_schema.get_all_operations())
    )
    assert documented == OPERATIONS

"""An error message never repeats a submitted value (spec/api.md, Conventions).

A marker is sent in every input of every endpoint the registry serves, one input at a time:
each body field (and each field of the objects inside arrays), each query parameter, each
path parameter, the Idempotency-Key header, and the marker as a wrong type. The marker appears
in no answer. (The inputs are read from the served OpenAPI schema, which
tests/test_schemathesis.py ties to the URL configuration, so a new endpoint or field is
covered without editing this file.)"""

import json

import pytest

from tests.support.endpoints import OPERATIONS, officer_only
from tests.support.factories import case_payload, submit_case
from tests.support.monitoring import watch

pytestmark = pytest.mark.django_db

MARKER = "Zq-marker-Wv"  # no digits, not hex, not an e-mail: no screen refuses it for its shape


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker) -> dict:
    from django.test import Client

    with django_db_blocker.unblock():
        return Client().get("/api/v1/schema/?format=json").json()


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def body_variants(schema: dict, body_schema: dict) -> list:
    """The marker in each field, alone; inside arrays, in each field of their objects; and
    as the whole body."""
    body_schema = resolve(schema, body_schema)
    variants: list = [MARKER, [MARKER], {MARKER: MARKER}]
    for name, prop in body_schema.get("properties", {}).items():
        variants.append({name: MARKER})
        variants.append({name: [MARKER]})
        variants.append({name: {MARKER: MARKER}})
        items = resolve(schema, resolve(schema, prop).get("items", {}))
        variants.extend({name: [{sub: MARKER}]} for sub in items.get("properties", {}))
    return variants


def requests_for(schema: dict, method: str, path: str, ids: dict) -> list[dict]:
    operation = schema["paths"][path][method.lower()]
    params = [p for p in operation.get("parameters", []) if p["in"] in ("query", "path")]
    path_ids = {p["name"]: ids[p["name"]] for p in params if p["in"] == "path"}
    sent = [{"path": path_ids, "query": {}, "body": None, "headers": {}}]
    for param in params:
        if param["in"] == "path":
            sent.append({"path": {**path_ids, param["name"]: MARKER}, "query": {}, "body": None})
        else:
            sent.append({"path": path_ids, "query": {param["name"]: MARKER}, "body": None})
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        for body in body_variants(schema, content["schema"]):
            sent.append({"path": path_ids, "query": {}, "body": body})
        sent.append(
            {"path": path_ids, "query": {}, "body": {}, "headers": {"HTTP_IDEMPOTENCY_KEY": MARKER}}
        )
    return sent


@pytest.fixture
def live_ids(world) -> dict[str, str]:
    payload = case_payload()
    case = submit_case(world.alice, **payload)
    ident = payload["identifiers"][0]
    filed = world.bob.post(
        "/api/v1/disputes", {"case_id": case["id"], "identifier": ident, "reason": "not_me"}
    )
    watched = watch(world.alice, [ident])
    endpoint = world.alice.post(
        "/api/v1/webhook-endpoints",
        {"url": "https://hooks.lender.example/registry", "events": ["case.reported"]},
    )
    assert endpoint.status_code == 201, endpoint.content
    return {
        "case_id": case["id"],
        "dispute_id": filed.json()["id"],
        "watch_id": watched[0]["id"],
        "endpoint_id": endpoint.json()["id"],
    }


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_it_repeats_no_submitted_value_in_any_answer(schema, world, live_ids, method, path):
    party = world.officer if officer_only(method, path) else world.alice
    answered = 0
    for request in requests_for(schema, method, path, live_ids):
        url = path.format(**request["path"])
        send = getattr(party.client, method.lower())
        if request["body"] is None:
            response = send(url, request["query"], **request.get("headers", {}))
        else:
            if request["query"]:
                url += "?" + "&".join(f"{k}={v}" for k, v in request["query"].items())
            response = send(
                url,
                json.dumps(request["body"]),
                content_type="application/json",
                **request.get("headers", {}),
            )
        assert response.status_code < 500, (request, response.content)
        text = response.content.decode()
        assert MARKER not in text, (request, text)
        assert MARKER.lower() not in text.lower(), (request, text)
        answered += 1
    assert answered >= 1

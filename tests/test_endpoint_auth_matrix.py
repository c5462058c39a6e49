"""Every API endpoint x {no key, revoked key, wrong scope, another member's object}.

The endpoints come from the URL resolver (registry/api/urls.py), so a new endpoint without a
row in ENDPOINTS (tests/support/endpoints.py) fails `test_it_has_a_row_for_every_endpoint`,
and a view whose scopes drift from its row fails `test_it_requires_the_scopes_the_table_says`.
"""

import uuid

import pytest
from rest_framework.test import APIRequestFactory

from registry.actors import Actor
from registry.models import ApiKey
from registry.services.api_keys import api_key_issue, api_key_revoke
from tests.support.api import assert_problem
from tests.support.endpoints import (
    ALL_SCOPES,
    ENDPOINTS,
    MEMBER_SCOPES,
    path_of,
    pattern_named,
    resolved_endpoints,
)
from tests.support.factories import case_payload, submit_case
from tests.support.world import KeyClient

pytestmark = pytest.mark.django_db
VALID_DISPUTE = {"reason": "not_me", "statement": "The subject denies it."}
CASES = [(name, method) for name, method in sorted(ENDPOINTS)]
OBJECT_CASES = [key for key in CASES if ENDPOINTS[key].owned_object]


def send(client: KeyClient, method: str, path: str, body: dict | None = None):
    if method == "get":
        return client.get(path)
    if method == "delete":
        return client.delete(path)
    return client.post(path, body or {})


def key_client(raw_key: str) -> KeyClient:
    return KeyClient(raw_key)


def issued(*, scopes: list[str], member=None, officer=None, revoked: bool = False) -> KeyClient:
    key = api_key_issue(actor=Actor.system(), member=member, officer=officer, scopes=scopes)
    if revoked:
        api_key_revoke(actor=Actor.system(), api_key=ApiKey.objects.get(pk=key.api_key.pk))
    return key_client(key.raw_key)


def wrong_scope_client(world, scopes: frozenset[str]) -> KeyClient | None:
    """A valid key holding none of `scopes`, or None when no such key can exist."""
    member_scopes = sorted(MEMBER_SCOPES - scopes)
    if member_scopes:
        return issued(scopes=member_scopes, member=world.alice.member)
    if "compliance" not in scopes:
        return world.officer.client
    return None


def test_it_has_a_row_for_every_endpoint():
    assert resolved_endpoints() == set(ENDPOINTS)


@pytest.mark.parametrize(("name", "method"), CASES)
def test_it_requires_the_scopes_the_table_says(name, method):
    pattern = pattern_named(name)
    view = pattern.callback.view_class()
    view.request = APIRequestFactory().generic(method.upper(), path_of(name))
    assert frozenset(view.required_scopes) == ENDPOINTS[(name, method)].scopes


@pytest.mark.parametrize(("name", "method"), CASES)
def test_it_refuses_a_call_without_a_key(world, name, method):
    response = send(world.anonymous, method, path_of(name), ENDPOINTS[(name, method)].body)
    assert_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("name", "method"), CASES)
def test_it_refuses_a_revoked_key(world, name, method):
    revoked = [
        issued(scopes=sorted(MEMBER_SCOPES), member=world.alice.member, revoked=True),
        issued(scopes=["compliance"], officer=world.officer.user, revoked=True),
    ]
    for client in revoked:
        response = send(client, method, path_of(name), ENDPOINTS[(name, method)].body)
        assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize(("name", "method"), CASES)
def test_it_refuses_a_key_without_the_scope(world, name, method):
    row = ENDPOINTS[(name, method)]
    client = wrong_scope_client(world, row.scopes)
    if client is None:
        assert row.scopes == ALL_SCOPES  # every key has one of them: nothing to refuse
        return
    assert_problem(send(client, method, path_of(name), row.body), 403, "forbidden_scope")


@pytest.fixture
def others_objects(world) -> dict[str, str]:
    """A case of carol's, a dispute bob filed about it, a watch and a webhook endpoint of
    carol's: none is alice's business."""
    payload = case_payload()
    case = submit_case(world.carol, **payload)
    filed = world.bob.post(
        "/api/v1/disputes",
        {"case_id": case["id"], "identifier": payload["identifiers"][0], **VALID_DISPUTE},
    )
    assert filed.status_code == 201, filed.content
    watched = world.carol.post(
        "/api/v1/watches",
        {
            "identifiers": payload["identifiers"],
            "purpose": "loan_monitoring",
            "consent_reference": "C-1",
        },
    )
    endpoint = world.carol.post(
        "/api/v1/webhook-endpoints",
        {"url": "https://hooks.carol.example/registry", "events": ["case.reported"]},
    )
    assert watched.status_code == endpoint.status_code == 201
    return {
        "case": case["id"],
        "dispute": filed.json()["id"],
        "watch": watched.json()["watches"][0]["id"],
        "webhook_endpoint": endpoint.json()["id"],
    }


@pytest.mark.parametrize(("name", "method"), OBJECT_CASES)
def test_it_answers_404_for_another_members_object(world, others_objects, name, method):
    row = ENDPOINTS[(name, method)]
    object_id = others_objects[row.owned_object]
    response = send(world.alice.client, method, path_of(name, object_id), row.body)
    body = assert_problem(response, 404, "not_found")
    assert object_id not in str(body)
    # ... exactly as for an id that does not exist at all
    missing = send(world.alice.client, method, path_of(name, str(uuid.uuid4())), row.body)
    assert_problem(missing, 404, "not_found")
    assert missing.json()["detail"] == body["detail"]
    if method == "get":  # while its owner does see it
        owner = {"case": world.carol, "dispute": world.bob}[row.owned_object]
        assert owner.get(path_of(name, object_id)).status_code == 200

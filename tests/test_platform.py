"""Authentication, scopes, problem details, rate limits, health."""

import json

import pytest
from django.utils import timezone

from registry.actors import Actor
from registry.models import ApiKey, Member
from registry.services.api_keys import api_key_revoke
from registry.services.members import member_set_limit, member_set_status
from tests.support.api import assert_problem

pytestmark = pytest.mark.django_db
AUDIT = "/api/v1/audit-events"
EVALUATE = "/api/v1/oprf/evaluate"


def test_it_refuses_a_call_without_key(world):
    body = assert_problem(world.anonymous.get(AUDIT), 401, "unauthenticated")
    assert "Bearer" in body["detail"]


def test_it_refuses_a_malformed_or_unknown_key(world):
    world.anonymous.credentials(HTTP_AUTHORIZATION="Bearer rk_nothere_secret")
    assert_problem(world.anonymous.get(AUDIT), 401, "unauthenticated")
    world.anonymous.credentials(HTTP_AUTHORIZATION="Basic abc")
    assert_problem(world.anonymous.get(AUDIT), 401, "unauthenticated")
    tampered = world.alice.raw_key[:-2] + ("AA" if not world.alice.raw_key.endswith("AA") else "BB")
    world.anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {tampered}")
    assert_problem(world.anonymous.get(AUDIT), 401, "unauthenticated")


def test_it_refuses_a_revoked_key_on_its_next_call(world):
    assert world.alice.get(AUDIT).status_code == 200
    api_key_revoke(actor=Actor.system(), api_key=ApiKey.objects.get(member=world.alice.member))
    assert_problem(world.alice.get(AUDIT), 401, "unauthenticated")


def test_it_refuses_a_suspended_member_on_its_next_call(world):
    assert world.alice.get(AUDIT).status_code == 200
    member_set_status(actor=Actor.system(), member=world.alice.member, status="suspended")
    assert_problem(world.alice.get(AUDIT), 401, "unauthenticated")
    member_set_status(actor=Actor.system(), member=world.alice.member, status="active")
    assert world.alice.get(AUDIT).status_code == 200


def test_it_records_last_use_of_a_key(world):
    world.alice.get(AUDIT)
    key = ApiKey.objects.get(member=world.alice.member)
    assert key.last_used_at is not None
    assert (timezone.now() - key.last_used_at).total_seconds() < 60


def test_it_stores_only_a_hash_of_the_key(world):
    key = ApiKey.objects.get(member=world.alice.member)
    secret = world.alice.raw_key.split("_", 2)[2]
    assert secret.encode() not in bytes(key.secret_hash)
    assert world.alice.raw_key not in json.dumps([str(v) for v in vars(key).values()])


def test_it_answers_403_for_a_missing_scope(db):
    from tests.support.world import make_member

    lookup_only = make_member("LOOKUP_ONLY", scopes=["lookup"])
    # the compliance endpoint needs the compliance scope
    response = lookup_only.get("/api/v1/compliance/subject-access?kind=phone&token=" + "a" * 128)
    assert response.status_code in (403, 404)  # 404 until the endpoint exists
    if response.status_code == 403:
        assert_problem(response, 403, "forbidden_scope")


def test_it_answers_problem_details_for_unknown_paths(world):
    assert_problem(world.alice.get("/api/v1/no-such-thing"), 404, "not_found")


def test_it_answers_problem_details_for_a_wrong_method(world):
    assert_problem(world.alice.client.delete(EVALUATE), 405, "method_not_allowed")


def test_it_answers_problem_details_for_malformed_json(world):
    response = world.alice.client.post(EVALUATE, data="{not json", content_type="application/json")
    assert_problem(response, 400, "malformed_json")


def test_it_answers_problem_details_for_an_unsupported_media_type(world):
    response = world.alice.client.post(EVALUATE, data="a=b", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")


def test_it_answers_problem_details_for_a_validation_error(world):
    body = assert_problem(
        world.alice.post(EVALUATE, {"blinded_elements": "nope"}), 400, "validation_error"
    )
    assert body["errors"][0]["pointer"] == "/blinded_elements"


def test_it_refuses_an_oversized_body_before_parsing(world, settings):
    settings.REGISTRY_MAX_BODY_BYTES = 1000
    response = world.alice.client.post(EVALUATE, data="x" * 2000, content_type="application/json")
    assert_problem(response, 413, "payload_too_large")


def test_it_rate_limits_per_member_and_scope(world):
    member_set_limit(
        actor=Actor.system(), member=world.alice.member, scope="lookup", per_minute=3, per_day=100
    )
    statuses = [world.alice.get(AUDIT).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = world.alice.get(AUDIT)
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    # bob's budget is his own
    assert world.bob.get(AUDIT).status_code == 200


def test_it_sends_ratelimit_headers(world):
    response = world.alice.get(AUDIT)
    assert int(response["RateLimit-Limit"]) > 0
    assert int(response["RateLimit-Remaining"]) == int(response["RateLimit-Limit"]) - 1
    assert 0 < int(response["RateLimit-Reset"]) <= 60


def test_it_enforces_the_daily_quota(world):
    member_set_limit(
        actor=Actor.system(), member=world.alice.member, scope="lookup", per_minute=50, per_day=2
    )
    assert [world.alice.get(AUDIT).status_code for _ in range(3)] == [200, 200, 429]


def test_it_shows_a_member_only_its_own_audit_events(world):
    from registry_client import oprf

    _blind, element = oprf.blind(b"phone\x00+8613812345678")
    assert world.alice.post(EVALUATE, {"blinded_elements": [element.hex()] * 2}).status_code == 200
    assert world.bob.post(EVALUATE, {"blinded_elements": [element.hex()]}).status_code == 200
    bob_events = world.bob.get(AUDIT).json()["results"]
    assert [e["details"]["elements"] for e in bob_events if e["action"] == "oprf.evaluated"] == [1]
    alice_prefix = world.alice.raw_key.split("_")[1]
    assert all(e["api_key_prefix"] != alice_prefix for e in bob_events)


def test_it_answers_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_it_serves_the_schema_and_docs(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert b"/api/v1/oprf/evaluate" in schema.content
    assert client.get("/api/v1/docs/").status_code == 200


def test_it_keeps_api_answers_free_of_sessions(world):
    response = world.alice.get(AUDIT)
    assert response.status_code == 200
    assert not response.cookies and "Cookie" not in response.get("Vary", "")
    assert not hasattr(response.wsgi_request, "session")


def test_it_still_guards_admin_forms_with_csrf_and_framing_headers(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/")
    assert page["X-Frame-Options"] == "DENY"
    form = {"username": "nobody", "password": "wrong", "otp_token": "000000"}
    assert client.post("/admin/login/", form).status_code == 403
    token = page.cookies["csrftoken"].value
    answered = client.post("/admin/login/", {**form, "csrfmiddlewaretoken": token})
    assert answered.status_code == 200 and answered.context["form"].errors


def test_it_creates_members_with_valid_codes_only(db):
    from registry.errors import Conflict, ValidationFailed
    from registry.services.members import member_create

    member_create(actor=Actor.system(), code="GOOD_1", name="Good")
    with pytest.raises(ValidationFailed):
        member_create(actor=Actor.system(), code="bad-code", name="Bad")
    with pytest.raises(Conflict):
        member_create(actor=Actor.system(), code="GOOD_1", name="Again")
    assert Member.objects.filter(code="GOOD_1").count() == 1

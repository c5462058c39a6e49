"""The member API in tests: the problem+json every refusal answers with, OPRF and lookup
bodies of a given size, and a member's rate limit set as an officer would."""

from registry_client import oprf

from registry.actors import Actor
from registry.services import quotas
from registry.services.members import member_set_limit
from tests.support.factories import fresh_phone, identifier

EVALUATE = "/api/v1/oprf/evaluate"


def assert_problem(response, status: int, code: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    for key in ("type", "title", "detail"):
        assert body[key]
    return body


def elements(n: int) -> dict:
    """A body for POST /api/v1/oprf/evaluate with `n` blinded elements."""
    _blind, element = oprf.blind(b"phone\x00+8613812345678")
    return {"blinded_elements": [element.hex()] * n}


def identifiers(n: int) -> dict:
    """A body for POST /api/v1/lookups with `n` fresh phone tokens."""
    return {
        "purpose": "loan_application",
        "identifiers": [identifier("phone", fresh_phone()) for _ in range(n)],
    }


def limit(party, scope: str, per_minute: int, per_day: int = 1_000_000) -> None:
    """The member's limits for `scope`, in force at once (the test's transaction never
    commits, so the process's copy is forgotten here rather than on commit)."""
    member_set_limit(
        actor=Actor.system(),
        member=party.member,
        scope=scope,
        per_minute=per_minute,
        per_day=per_day,
    )
    quotas.member_limits_forget(party.member.pk)

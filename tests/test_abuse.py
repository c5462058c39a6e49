"""Sweeps: a member far above its usual volume is throttled AND shown to the officers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditEvent
from registry.selectors.abuse import throttled_members
from registry.services import abuse
from tests.support.api import EVALUATE, elements, limit
from tests.support.endpoints import ENDPOINTS, path_of
from tests.support.factories import LOOKUPS, identifier

pytestmark = pytest.mark.django_db


def refusals(party) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="rate_limit.exceeded", member=party.member))


def officer_actor(world) -> Actor:
    return Actor.for_officer(world.officer.user)


def test_it_throttles_a_member_sweeping_the_evaluate_endpoint_and_records_it_once(world):
    limit(world.bob, "evaluate", per_minute=5)
    statuses = [world.bob.post(EVALUATE, elements(1)).status_code for _ in range(25)]
    assert statuses == [200] * 5 + [429] * 20
    events = refusals(world.bob)
    assert len(events) == 1  # twenty refusals in one minute: one event, not twenty
    assert events[0].details == {"scope": "evaluate", "window": "minute", "limit": 5}
    assert events[0].object_id == world.bob.member.code
    assert events[0].api_key_prefix == world.bob.raw_key.split("_")[1]


def test_it_throttles_a_member_sweeping_lookups_and_shows_it_to_officers(world):
    limit(world.bob, "lookup", per_minute=3)
    body = {"purpose": "loan_application", "identifiers": [identifier("phone", "+8613800000001")]}
    statuses = [world.bob.post(LOOKUPS, body).status_code for _ in range(10)]
    assert statuses == [200] * 3 + [429] * 7
    assert world.alice.post(LOOKUPS, body).status_code == 200  # others are not held up

    listed = throttled_members(
        actor=officer_actor(world), since=timezone.now() - timedelta(hours=1)
    )
    assert [(t.member.code, t.scopes, t.windows_refused) for t in listed] == [
        ("BOB_LOANS", ["lookup"], 1)
    ]
    assert listed[0].first_refused_at <= listed[0].last_refused_at
    assert listed[0].usual_lookups_per_day == 0  # no history before the sweep


def test_it_records_the_daily_quota_as_its_own_window(world):
    limit(world.bob, "lookup", per_minute=100, per_day=2)
    body = {"purpose": "loan_application", "identifiers": [identifier("phone", "+8613800000002")]}
    assert [world.bob.post(LOOKUPS, body).status_code for _ in range(4)] == [200, 200, 429, 429]
    assert [e.details["window"] for e in refusals(world.bob)] == ["day"]


def test_it_records_one_event_per_window(world, monkeypatch):
    actor = Actor.for_api_key(world.bob.member.api_keys.get())
    moment = [1_900_000_000.0]
    monkeypatch.setattr(abuse.time, "time", lambda: moment[0])
    assert abuse.rate_limit_exceeded_record(actor=actor, scope="lookup", limit=3, window="minute")
    assert not abuse.rate_limit_exceeded_record(
        actor=actor, scope="lookup", limit=3, window="minute"
    )
    # another scope, and the next minute, are new windows
    assert abuse.rate_limit_exceeded_record(actor=actor, scope="submit", limit=3, window="minute")
    moment[0] += 60
    assert abuse.rate_limit_exceeded_record(actor=actor, scope="lookup", limit=3, window="minute")
    assert len(refusals(world.bob)) == 3
    listed = throttled_members(
        actor=officer_actor(world), since=timezone.now() - timedelta(minutes=5)
    )
    assert [(t.scopes, t.windows_refused) for t in listed] == [(["lookup", "submit"], 3)]


def test_it_shows_a_member_only_its_own_throttling(world):
    for party in (world.alice, world.bob):
        actor = Actor.for_api_key(party.member.api_keys.get())
        abuse.rate_limit_exceeded_record(actor=actor, scope="lookup", limit=1, window="minute")
    since = timezone.now() - timedelta(minutes=5)
    alice_actor = Actor.for_api_key(world.alice.member.api_keys.get())
    assert [t.member.code for t in throttled_members(actor=alice_actor, since=since)] == [
        "ALICE_BANK"
    ]
    assert len(throttled_members(actor=officer_actor(world), since=since)) == 2
    # and nothing before `since`
    assert throttled_members(actor=officer_actor(world), since=timezone.now()) == []


def test_it_keeps_tokens_out_of_the_refusal_event(world):
    limit(world.bob, "lookup", per_minute=1)
    item = identifier("phone", "+8613800000003")
    body = {"purpose": "loan_application", "identifiers": [item]}
    world.bob.post(LOOKUPS, body)
    assert world.bob.post(LOOKUPS, body).status_code == 429
    (event,) = refusals(world.bob)
    assert item["token"] not in str(event.details)


def test_it_refuses_bodies_over_2_mib_on_every_endpoint_before_parsing(world, settings):
    assert settings.REGISTRY_MAX_BODY_BYTES == 2 * 1024 * 1024  # the configured default
    oversized = b"{" + b"x" * settings.REGISTRY_MAX_BODY_BYTES  # not even JSON
    posts = sorted(name for name, method in ENDPOINTS if method == "post")
    assert len(posts) >= 8
    for name in posts:
        for client in (world.alice.client, world.anonymous):
            response = client.generic(
                "POST", path_of(name), oversized, content_type="application/json"
            )
            # 413, not 400 malformed_json (it was never parsed) nor 401 (nor authenticated)
            assert response.status_code == 413, (name, response.content[:200])
            assert response.json()["code"] == "payload_too_large"
    # just under the limit the request is parsed (and refused for what it is)
    fits = b"{" + b"x" * (settings.REGISTRY_MAX_BODY_BYTES - 2)
    response = world.alice.client.generic(
        "POST", "/api/v1/lookups", fits, content_type="application/json"
    )
    assert response.json()["code"] == "malformed_json"

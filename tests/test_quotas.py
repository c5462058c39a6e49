"""Limits count units of work, not calls (api.md "Conventions"), so that one key cannot walk
the identifier space in big batches: an evaluate of n elements and a lookup of n identifiers
cost n; a call that would pass a limit is refused whole and costs nothing; evaluate has one
budget per member whichever key calls; and the limits hold when Redis is down."""

import logging
import re
import time

import pytest
from django.core.cache import cache

from registry.actors import Actor
from registry.models import AuditEvent, QuotaCounter
from registry.services import quotas
from registry.services.api_keys import api_key_issue
from registry.services.members import member_set_limit
from tests.support.admin import ADMIN, verified_client
from tests.support.api import EVALUATE, assert_problem, elements, identifiers, limit
from tests.support.factories import LOOKUPS
from tests.support.world import KeyClient

pytestmark = pytest.mark.django_db
DEAD_REDIS = "redis://127.0.0.1:1/2"  # nothing listens on port 1


def second_key(party, scopes: list[str]) -> KeyClient:
    issued = api_key_issue(actor=Actor.system(), member=party.member, scopes=scopes)
    return KeyClient(issued.raw_key)


def remaining(response) -> int:
    return int(response["RateLimit-Remaining"])


def used_today(party, scope: str) -> int:
    """The member's units used today, as the limiter counts them in Redis."""
    return cache.get(f"rl:{party.member.pk}:{scope}:d:{int(time.time()) // 86400}", 0)


# --- units, not calls -----------------------------------------------------------------------


def test_it_gives_evaluate_one_budget_per_member_across_its_keys(world):
    limit(world.bob, "evaluate", per_minute=1000)
    lookup_key = second_key(world.bob, ["lookup"])
    submit_key = second_key(world.bob, ["submit"])

    statuses = [
        client.post(EVALUATE, elements(300)).status_code
        for client in (lookup_key, submit_key, lookup_key, submit_key)
    ]

    assert statuses == [200, 200, 200, 429]  # 900 units spent: 300 more do not fit
    assert used_today(world.bob, "evaluate") == 900
    assert world.alice.post(EVALUATE, elements(300)).status_code == 200  # others go on


def test_it_refuses_a_call_that_would_pass_the_limit_whole_and_charges_nothing(world):
    limit(world.bob, "evaluate", per_minute=1000)
    assert remaining(world.bob.post(EVALUATE, elements(700))) == 300

    refused = world.bob.post(EVALUATE, elements(400))

    assert_problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) > 0
    assert remaining(refused) == 300  # the refused call cost nothing
    assert used_today(world.bob, "evaluate") == 700
    assert AuditEvent.objects.filter(action="oprf.evaluated", member=world.bob.member).count() == 1
    fits = world.bob.post(EVALUATE, elements(300))
    assert fits.status_code == 200 and remaining(fits) == 0


def test_it_charges_a_lookup_of_400_identifiers_400_units(world):
    limit(world.bob, "lookup", per_minute=1000)

    first = world.bob.post(LOOKUPS, identifiers(400))

    assert first.status_code == 200
    assert (first["RateLimit-Limit"], remaining(first)) == ("1000", 600)
    assert used_today(world.bob, "lookup") == 400
    assert world.bob.post(LOOKUPS, identifiers(400)).status_code == 200
    assert_problem(world.bob.post(LOOKUPS, identifiers(400)), 429, "rate_limited")
    assert world.bob.post(LOOKUPS, identifiers(200)).status_code == 200  # exactly the rest


def test_it_counts_the_daily_quota_in_units_too(world):
    limit(world.bob, "lookup", per_minute=10_000, per_day=500)
    assert world.bob.post(LOOKUPS, identifiers(300)).status_code == 200
    refused = world.bob.post(LOOKUPS, identifiers(300))
    assert_problem(refused, 429, "rate_limited")
    assert "daily quota" in refused.json()["detail"]
    assert [e.details["window"] for e in refusal_events(world.bob)] == ["day"]


def test_it_tells_a_member_whose_batch_can_never_fit_to_send_smaller_ones(world):
    limit(world.bob, "lookup", per_minute=100)
    refused = world.bob.post(LOOKUPS, identifiers(150))
    assert_problem(refused, 429, "rate_limited")
    assert "smaller batches" in refused.json()["detail"]


def test_it_charges_nothing_for_invalid_input(world):
    limit(world.bob, "lookup", per_minute=10)
    bad = identifiers(5)
    bad["purpose"] = "curiosity"
    assert world.bob.post(LOOKUPS, bad).status_code == 400
    assert used_today(world.bob, "lookup") == 0


def refusal_events(party) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="rate_limit.exceeded", member=party.member))


# --- Redis down -----------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings, monkeypatch):
    """The shared cache pointed at a port where nothing listens (as when Redis is down)."""
    monkeypatch.setattr(quotas, "_fallback_logged_at", [float("-inf")])
    monkeypatch.setattr(quotas, "_cache_down_until", [float("-inf")])
    monkeypatch.setattr(quotas, "_reserve_script", None)
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        cache.get("anything")


def test_it_keeps_evaluate_and_lookups_limited_when_redis_is_down(world, redis_down, caplog):
    limit(world.bob, "evaluate", per_minute=1000)
    limit(world.bob, "lookup", per_minute=500)
    other_key = second_key(world.bob, ["submit"])

    with caplog.at_level(logging.ERROR, logger="registry.services.quotas"):
        evaluate = [
            client.post(EVALUATE, elements(400)).status_code
            for client in (world.bob.client, other_key, world.bob.client)
        ]
        lookups = [world.bob.post(LOOKUPS, identifiers(200)).status_code for _ in range(3)]

    assert evaluate == [200, 200, 429]
    assert lookups == [200, 200, 429]
    counted = dict(
        QuotaCounter.objects.filter(member=world.bob.member, window="d").values_list(
            "scope", "used"
        )
    )
    assert counted == {"evaluate": 800, "lookup": 400}  # refused calls cost nothing here too
    fallback_logs = [r for r in caplog.records if "counting limits in PostgreSQL" in r.getMessage()]
    assert len(fallback_logs) == 1  # logged, not once per call
    assert world.alice.post(LOOKUPS, identifiers(1)).status_code == 200


def test_it_shows_the_limiter_fallback_on_the_dashboard(world, redis_down):
    officer = verified_client(world.officer.user)
    tile = re.compile(r'<div class="registry-tile[^"]*" id="tile-limiter">.*?</div>', re.S)
    before = tile.search(officer.get(ADMIN).content.decode()).group(0)
    assert "registry-tile-alarm" not in before and "never fell back" in before

    assert world.bob.post(LOOKUPS, identifiers(1)).status_code == 200

    response = officer.get(ADMIN)  # served with Redis still down
    assert response.status_code == 200
    after = tile.search(response.content.decode()).group(0)
    assert "registry-tile-alarm" in after
    assert "Limits last counted in PostgreSQL" in after
    assert response.context["dashboard"]["limiter_fallback_alarm"]


# --- officers set unit quotas ------------------------------------------------------------------


def test_an_officer_sets_a_members_evaluate_quota_in_units(
    world, django_capture_on_commit_callbacks
):
    officer = verified_client(world.officer.user)
    member = world.bob.member
    form = officer.get(f"{ADMIN}registry/member/{member.pk}/limit/").content.decode()
    assert 'value="evaluate"' in form and "Units per minute" in form

    with django_capture_on_commit_callbacks(execute=True):
        response = officer.post(
            f"{ADMIN}registry/member/{member.pk}/limit/",
            {"scope": "evaluate", "per_minute": 500, "per_day": 2000},
        )

    assert response.status_code == 302
    assert quotas.limits_for(member.pk, "evaluate") == (500, 2000)
    page = officer.get(f"{ADMIN}registry/member/{member.pk}/change/").content.decode()
    assert "OPRF evaluate (one unit per element)" in page
    assert [world.bob.post(EVALUATE, elements(300)).status_code for _ in range(2)] == [200, 429]


def test_an_unknown_limit_scope_is_refused(world):
    from registry.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        member_set_limit(
            actor=Actor.system(), member=world.bob.member, scope="x", per_minute=1, per_day=1
        )


@pytest.mark.chaos
def test_it_counts_in_postgresql_while_a_real_redis_is_stopped_and_returns_to_it(
    world, settings, monkeypatch
):
    from tests.support.private_services import private_redis

    with private_redis() as redis:
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": redis.url(2)}}
        monkeypatch.setattr(quotas, "_fallback_logged_at", [float("-inf")])
        monkeypatch.setattr(quotas, "_cache_down_until", [float("-inf")])
        monkeypatch.setattr(quotas, "_reserve_script", None)
        limit(world.bob, "lookup", per_minute=500)
        assert world.bob.post(LOOKUPS, identifiers(100)).status_code == 200
        assert used_today(world.bob, "lookup") == 100  # counted in the private Redis

        redis.stop()
        during = [world.bob.post(LOOKUPS, identifiers(200)).status_code for _ in range(3)]

        assert during == [200, 200, 429]  # still limited: 400 units counted in PostgreSQL
        assert (
            QuotaCounter.objects.get(member=world.bob.member, scope="lookup", window="d").used
            == 400
        )

        redis.start()
        quotas._cache_down_until[0] = float("-inf")  # as after CACHE_RETRY_SECONDS
        assert world.bob.post(LOOKUPS, identifiers(50)).status_code == 200
        assert used_today(world.bob, "lookup") == 150  # back in Redis (its data survived)

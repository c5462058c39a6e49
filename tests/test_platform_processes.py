"""What needs separate processes: rate limits shared by several web processes."""

import json
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from registry.actors import Actor
from registry.services.members import member_set_limit
from tests.support.servers import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def call(base: str, path: str, key: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own server on loopback
        base + path, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        assert body["code"] == "rate_limited" or exc.code != 429
        return exc.code


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (make test provides it)")
def test_it_shares_rate_limits_across_two_web_processes(world):
    member_set_limit(
        actor=Actor.system(), member=world.alice.member, scope="lookup", per_minute=6, per_day=1000
    )
    prefix = "rl-shared-test"
    with (
        gunicorn(workers=1, CACHE_KEY_PREFIX=prefix) as first,
        gunicorn(workers=1, CACHE_KEY_PREFIX=prefix) as second,
    ):
        statuses = [
            call(base, "/api/v1/audit-events", world.alice.raw_key)
            for _ in range(4)
            for base in (first, second)
        ]
    # 8 calls alternating between two processes: the shared budget of 6 holds.
    assert statuses == [200] * 6 + [429] * 2

"""Per-member, per-scope rate limits (per minute) and quotas (per day), counted in the shared
cache (Redis in production) so that every web process shares one count.

Fixed windows keep it to two INCRs per request. If the cache is down the limiter fails open
and logs it: losing the registry to a Redis outage would be worse than a minute of
uncounted calls.
"""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from registry.actors import Actor
from registry.errors import RateLimited
from registry.models import MemberLimit
from registry.services.abuse import rate_limit_exceeded_record

logger = logging.getLogger(__name__)
LIMITS_CACHE_SECONDS = 30


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


def limits_for(member_id: int, scope: str) -> tuple[int, int]:
    key = f"limits:{member_id}:{scope}"
    cached = cache.get(key)
    if cached is None:
        row = MemberLimit.objects.filter(member_id=member_id, scope=scope).first()
        cached = (
            (row.per_minute, row.per_day)
            if row
            else (settings.REGISTRY_DEFAULT_RATE_PER_MINUTE, settings.REGISTRY_DEFAULT_QUOTA_PER_DAY)
        )
        cache.set(key, cached, LIMITS_CACHE_SECONDS)
    return cached


def forget_limits(member_id: int) -> None:
    cache.delete_many([f"limits:{member_id}:{scope}" for scope in ("lookup", "submit", "dispute")])


def _count(key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, ttl)
        return 1


def _count_both(windows: list[tuple[str, int]]) -> list[int]:
    """Count one call in each (key, ttl) window. On Redis this is ONE round trip (INCR and
    TTL of each key, pipelined; EXPIRE only when a window starts) instead of four per call
    with cache.add + cache.incr: on a single-identifier lookup the limiter's round trips cost
    as much as the lookup's own queries. Counters stay plain integers under Django's key
    names, so cache.get and cache.clear see them as before."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return [_count(key, ttl) for key, ttl in windows]
    keys = [(backend.make_and_validate_key(key), ttl) for key, ttl in windows]
    client = backend._cache.get_client(write=True)  # Django's own pool for this cache
    pipe = client.pipeline(transaction=False)
    for key, _ttl in keys:
        pipe.incr(key)
        pipe.ttl(key)
    replies = pipe.execute()
    fresh = [(key, ttl) for (key, ttl), left in zip(keys, replies[1::2], strict=True) if left < 0]
    if fresh:  # first call of a window (or a key that lost its TTL): give it one
        pipe = client.pipeline(transaction=False)
        for key, ttl in fresh:
            pipe.expire(key, ttl)
        pipe.execute()
    return [int(count) for count in replies[0::2]]


def consume(actor: Actor, scope: str, cost: int = 1) -> Budget | None:
    """Count one call against the member's minute rate and daily quota; raise RateLimited
    past either. Returns the minute budget for the RateLimit-* headers."""
    if not actor.is_member:
        return None
    now = int(time.time())
    minute_window, day_window = now // 60, now // 86400
    try:
        per_minute, per_day = limits_for(actor.member_id, scope)
        base = f"rl:{actor.member_id}:{scope}"
        used_minute, used_day = _count_both(
            [(f"{base}:m:{minute_window}", 90), (f"{base}:d:{day_window}", 86400 + 60)]
        )
    except Exception:  # noqa: BLE001 - any cache failure: fail open, loudly
        logger.warning("rate limiter unavailable; failing open", exc_info=True)
        return None
    minute_reset = 60 - now % 60
    if used_day > per_day:
        rate_limit_exceeded_record(actor=actor, scope=scope, limit=per_day, window="day")
        _reject(per_day, 86400 - now % 86400, "daily quota")
    if used_minute > per_minute:
        rate_limit_exceeded_record(actor=actor, scope=scope, limit=per_minute, window="minute")
        _reject(per_minute, minute_reset, "rate limit")
    return Budget(per_minute, max(per_minute - used_minute, 0), minute_reset)


def _reject(limit: int, reset: int, what: str) -> None:
    exc = RateLimited(f"The member's {what} of {limit} calls is used up; retry in {reset} s.")
    exc.retry_after = reset
    raise exc

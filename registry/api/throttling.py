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
# Each web process keeps the members' limits it has read for this long. An officer's change
# applies at once in the process that makes it (forget_limits) and within this many seconds
# in every other one. A Redis GET per call cost as much as the limiter's own counting.
LIMITS_CACHE_SECONDS = 5.0
_limits: dict[tuple[int, str], tuple[float, tuple[int, int]]] = {}  # -> (read at, limits)


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


def limits_for(member_id: int, scope: str) -> tuple[int, int]:
    """(per minute, per day) for the member and scope, read from the database at most every
    LIMITS_CACHE_SECONDS per process."""
    now = time.monotonic()
    cached = _limits.get((member_id, scope))
    if cached is not None and now - cached[0] < LIMITS_CACHE_SECONDS:
        return cached[1]
    row = MemberLimit.objects.filter(member_id=member_id, scope=scope).first()
    limits = (
        (row.per_minute, row.per_day)
        if row
        else (settings.REGISTRY_DEFAULT_RATE_PER_MINUTE, settings.REGISTRY_DEFAULT_QUOTA_PER_DAY)
    )
    _limits[(member_id, scope)] = (now, limits)
    return limits


def forget_limits(member_id: int) -> None:
    """Drop this process's copy of the member's limits (other processes: see
    LIMITS_CACHE_SECONDS)."""
    for key in list(_limits):  # a copy: other threads may add keys meanwhile
        if key[0] == member_id:
            _limits.pop(key, None)


def _count(key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, ttl)
        return 1


# INCR each window's counter and, when it has no TTL yet (the first call of a window, or a key
# that lost it), give it one (ARGV[i] seconds). A script: one command, one round trip, atomic.
_COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[i]) end
end
return counts
"""
_count_script = None  # redis-py Script (EVALSHA, loading the script again if Redis lost it)


def _count_both(windows: list[tuple[str, int]]) -> list[int]:
    """Count one call in each (key, ttl) window. On Redis this is ONE round trip (the script
    above) instead of four per call with cache.add + cache.incr: on a single-identifier lookup
    the limiter's round trips cost as much as the lookup's own queries, and a script costs
    less client CPU than a pipeline. Counters stay plain integers under Django's key names, so
    cache.get and cache.clear see them as before."""
    global _count_script  # built once per process, on first use
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return [_count(key, ttl) for key, ttl in windows]
    client = backend._cache.get_client(write=True)  # Django's own pool for this cache
    if _count_script is None:
        _count_script = client.register_script(_COUNT_SCRIPT)
    keys = [backend.make_and_validate_key(key) for key, _ttl in windows]
    counts = _count_script(keys=keys, args=[ttl for _key, ttl in windows], client=client)
    return [int(count) for count in counts]


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
    except Exception:  # any cache failure: fail open, loudly
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

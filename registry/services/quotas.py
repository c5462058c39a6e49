"""Per-member rate limits (per minute) and quotas (per day) in UNITS OF WORK (api.md
"Conventions"): an evaluate of n elements or a lookup of n identifiers costs n units, any other
call one. A call that would pass a limit is refused whole and costs nothing, so the check and
the count are one atomic step (`_RESERVE_SCRIPT`): read both windows' counters, and add the
call's units to both only if neither limit would be passed.

Counted in the shared cache (Redis), so every web process shares one count: one script, one
round trip per call. When Redis cannot be reached the limits do NOT fall away: the same
reservation is made in PostgreSQL (`QuotaCounter`, one upsert in a savepoint), the fallback is
logged (at most once a minute per process) and the dashboard shows when it was last used.

The limits themselves are read from `MemberLimit` and kept per process for
LIMITS_CACHE_SECONDS; member_set_limit forgets them (on commit) in the process that changed
them.
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from registry.actors import Actor
from registry.errors import RateLimited
from registry.models import MemberLimit, QuotaCounter
from registry.services.abuse import rate_limit_exceeded_record

logger = logging.getLogger(__name__)
# Each web process keeps the members' limits it has read for this long. An officer's change
# applies at once in the process that makes it (member_set_limit forgets them on commit) and
# within this many seconds in every other one. A Redis GET per call cost as much as the
# limiter's own counting.
LIMITS_CACHE_SECONDS = 5.0
FALLBACK_LOG_SECONDS = 60.0  # one log line a minute per process while Redis is down
# After a failure this process counts in PostgreSQL for this long before trying Redis again:
# an unreachable Redis can cost a connect timeout (2 s) per attempt, not to be paid per call.
CACHE_RETRY_SECONDS = 5.0
MINUTE, DAY = 60, 86400
_limits: dict[tuple[int, str], tuple[float, tuple[int, int]]] = {}  # -> (read at, limits)
_fallback_logged_at = [float("-inf")]
_cache_down_until = [float("-inf")]
_lock = threading.Lock()


@dataclass(frozen=True)
class Budget:
    limit: int  # units per minute
    remaining: int
    reset: int  # seconds until the minute window resets


def limits_for(member_id: int, scope: str) -> tuple[int, int]:
    """(units per minute, units per day) for the member and scope, read from the database at
    most every LIMITS_CACHE_SECONDS per process."""
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


def member_limits_forget(member_id: int) -> None:
    """Drop this process's copy of the member's limits (other processes: see
    LIMITS_CACHE_SECONDS)."""
    for key in list(_limits):  # a copy: other threads may add keys meanwhile
        if key[0] == member_id:
            _limits.pop(key, None)


# KEYS: the minute and the day counter. ARGV: units, minute limit, day limit, minute TTL, day
# TTL. Returns {accepted (1/0), minute count, day count}: the counts after the call when it
# was accepted, as they stand (unchanged) when it was refused.
_RESERVE_SCRIPT = """
local units = tonumber(ARGV[1])
local minute = tonumber(redis.call('GET', KEYS[1]) or '0')
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
if minute + units > tonumber(ARGV[2]) or day + units > tonumber(ARGV[3]) then
  return {0, minute, day}
end
minute = redis.call('INCRBY', KEYS[1], units)
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
day = redis.call('INCRBY', KEYS[2], units)
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
return {1, minute, day}
"""
_reserve_script = None  # redis-py Script (EVALSHA, loading the script again if Redis lost it)


def _reserve_in_cache(base: str, windows: tuple[int, int], units: int, limits: tuple[int, int]):
    """The reservation in the shared cache: ONE round trip on Redis. Counters stay plain
    integers under Django's key names, so cache.get sees them."""
    global _reserve_script  # built once per process, on first use
    backend = caches["default"]
    keys = [f"{base}:m:{windows[0]}", f"{base}:d:{windows[1]}"]
    if not isinstance(backend, RedisCache):  # tests and development without Redis
        with _lock:
            counts = [backend.get(key, 0) for key in keys]
            if any(c + units > limit for c, limit in zip(counts, limits, strict=True)):
                return False, *counts
            for key, count, ttl in zip(keys, counts, (MINUTE + 30, DAY + 60), strict=True):
                backend.set(key, count + units, ttl)
            return True, counts[0] + units, counts[1] + units
    client = backend._cache.get_client(write=True)  # Django's own pool for this cache
    if _reserve_script is None:
        _reserve_script = client.register_script(_RESERVE_SCRIPT)
    accepted, minute, day = _reserve_script(
        keys=[backend.make_and_validate_key(key) for key in keys],
        args=[units, *limits, MINUTE + 30, DAY + 60],
        client=client,
    )
    return bool(accepted), int(minute), int(day)


# Both windows' rows in one upsert; a row of an older window restarts at this call's units.
# Rows are locked by the upsert until the savepoint ends, so concurrent reservations of one
# member and scope are serialised and none passes the limit.
_RESERVE_SQL = f"""
INSERT INTO {QuotaCounter._meta.db_table} AS counter
    (member_id, scope, "window", start, used, updated_at)
VALUES (%(member)s, %(scope)s, 'd', %(day)s, %(units)s, %(now)s),
       (%(member)s, %(scope)s, 'm', %(minute)s, %(units)s, %(now)s)
ON CONFLICT (member_id, scope, "window") DO UPDATE
SET used = CASE WHEN counter.start = EXCLUDED.start THEN counter.used + EXCLUDED.used
                ELSE EXCLUDED.used END,
    start = EXCLUDED.start, updated_at = EXCLUDED.updated_at
RETURNING "window", used
"""  # noqa: S608 - the table name comes from the model


class _OverLimit(Exception):
    pass


def _reserve_in_database(
    member_id: int, scope: str, windows: tuple[int, int], units: int, limits: tuple[int, int]
):
    """The same reservation in PostgreSQL, for when the shared cache is down."""
    params = {
        "member": member_id,
        "scope": scope,
        "minute": windows[0],
        "day": windows[1],
        "units": units,
        "now": timezone.now(),
    }
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_RESERVE_SQL, params)
            used = dict(cursor.fetchall())
            if used["m"] > limits[0] or used["d"] > limits[1]:
                raise _OverLimit
    except _OverLimit:  # rolled back: the refused call costs nothing
        return False, used["m"] - units, used["d"] - units
    return True, used["m"], used["d"]


def _log_fallback(member_id: int, scope: str) -> None:
    now = time.monotonic()
    if now - _fallback_logged_at[0] < FALLBACK_LOG_SECONDS:
        return
    _fallback_logged_at[0] = now
    logger.error(
        "shared rate limiter unavailable; counting limits in PostgreSQL",
        exc_info=True,
        extra={"member_id": member_id, "scope": scope},
    )


def _reserve(member_id: int, scope: str, windows: tuple[int, int], units: int, limits):
    if time.monotonic() >= _cache_down_until[0]:
        try:
            return _reserve_in_cache(f"rl:{member_id}:{scope}", windows, units, limits)
        except (RedisError, OSError):  # the cache is unreachable: count in PostgreSQL, loudly
            _cache_down_until[0] = time.monotonic() + CACHE_RETRY_SECONDS
            _log_fallback(member_id, scope)
    return _reserve_in_database(member_id, scope, windows, units, limits)


def quota_consume(*, actor: Actor, scope: str, units: int = 1) -> Budget | None:
    """Reserve `units` of the member's minute rate and daily quota for `scope`, or raise
    RateLimited (429) and reserve nothing when either would be passed. Returns the minute
    budget for the RateLimit-* headers (None for callers that are not members)."""
    if not actor.is_member:
        return None
    now = int(time.time())
    windows = (now // MINUTE, now // DAY)
    limits = limits_for(actor.member_id, scope)
    accepted, minute, day = _reserve(actor.member_id, scope, windows, units, limits)
    per_minute, per_day = limits
    minute_reset = MINUTE - now % MINUTE
    budget = Budget(per_minute, max(per_minute - minute, 0), minute_reset)
    if accepted:
        return budget
    if day + units > per_day:
        rate_limit_exceeded_record(actor=actor, scope=scope, limit=per_day, window="day")
        _refuse(budget, units, per_day, DAY - now % DAY, _("daily quota"))
    rate_limit_exceeded_record(actor=actor, scope=scope, limit=per_minute, window="minute")
    _refuse(budget, units, per_minute, minute_reset, _("rate limit"))


def _refuse(budget: Budget, units: int, limit: int, reset: int, what: str) -> None:
    if units > limit:
        message = _(
            "This call needs %(units)d units, more than the member's %(what)s of %(limit)d "
            "units: send smaller batches."
        ) % {"units": units, "what": what, "limit": limit}
    else:
        message = _(
            "The member's %(what)s of %(limit)d units does not leave the %(units)d this call "
            "needs; retry in %(reset)d s."
        ) % {"units": units, "what": what, "limit": limit, "reset": reset}
    exc = RateLimited(message)
    exc.retry_after = reset
    exc.budget = budget
    raise exc

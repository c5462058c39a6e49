"""Sweeps: a member calling far above its usual volume (harvesting tokens through the OPRF,
or testing identifiers in bulk through lookups) runs into its rate limit or daily quota,
which officers set per member from its usual volume. Being refused is not enough: the
officers must SEE it. Each refusal window is recorded as a `rate_limit.exceeded` audit event
(listed for officers by selectors/abuse.py), at most once per member, scope and window, so a
sweep of thousands of refused calls writes a handful of events, not thousands.
"""

import logging
import time

from django.core.cache import cache
from django.db import transaction

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.services.audit import audit_record

logger = logging.getLogger(__name__)
WINDOW_SECONDS = {"minute": 60, "day": 86400}
_local_markers: set[str] = set()  # while the cache is down (a few per member and day)


@transaction.atomic
def rate_limit_exceeded_record(
    *, actor: Actor, scope: str, limit: int, window: str, quota: str = ""
) -> bool:
    """Record that `actor`'s member went past its `window` ("minute" or "day") limit for
    `scope`. Returns True when an event was written (the first refusal of this window).
    `quota` names a limit other than the calls of the scope (e.g. "disputes_filed")."""
    if not actor.is_member:
        return False
    seconds = WINDOW_SECONDS[window]
    marker = f"abuse:{actor.member_id}:{scope}{quota}:{window}:{int(time.time()) // seconds}"
    try:
        first = cache.add(marker, 1, seconds + 60)
    except Exception:  # without the cache, once per window in this process
        logger.warning("rate-limit marker unavailable; marking in this process", exc_info=True)
        first = marker not in _local_markers
        _local_markers.add(marker)
    if not first:
        return False
    audit_record(
        actor=actor,
        action=AuditAction.RATE_LIMIT_EXCEEDED,
        object_type="member",
        object_id=actor.member.code,
        details={
            "scope": scope,
            "window": window,
            "limit": limit,
            **({"quota": quota} if quota else {}),
        },
    )
    logger.warning(
        "member throttled",
        extra={"member": actor.member.code, "scope": scope, "window": window, "limit": limit},
    )
    return True

"""Refused windows, recorded as the rate limiter records them (for the throttled panels)."""

from registry.actors import Actor
from registry.services import abuse


def member_actor(party) -> Actor:
    return Actor.for_api_key(party.member.api_keys.get())


def refuse(party, *, scope: str = "lookup", window: str = "minute") -> None:
    """One refused window, recorded as the rate limiter records it."""
    assert abuse.rate_limit_exceeded_record(
        actor=member_actor(party), scope=scope, limit=1, window=window
    )

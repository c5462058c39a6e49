"""Peppers configured as an operator rotating them would (oldest first)."""

from contextlib import contextmanager

from django.test import override_settings

from registry import tokens

P1, P2, P3 = "22" * 32, "33" * 32, "44" * 32  # P1 is the test settings' pepper


@contextmanager
def peppers(*configured: str):
    """Configure peppers oldest first, as an operator rotating them would."""
    with override_settings(
        REGISTRY_PREVIOUS_PEPPERS=list(configured[:-1]), REGISTRY_PEPPER=configured[-1]
    ):
        tokens.configured_peppers.cache_clear()
        try:
            yield
        finally:
            tokens.configured_peppers.cache_clear()

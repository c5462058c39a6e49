"""Tokens at rest: the registry stores `digest = HMAC-SHA256(pepper, token)`, never a token.

Pepper rotation layers the new pepper over stored digests (so no token is ever needed again):
    digest_v1 = HMAC(pepper_1, token)
    digest_vn = HMAC(pepper_n, digest_v(n-1))
Peppers are configured oldest first (REGISTRY_PREVIOUS_PEPPERS, then REGISTRY_PEPPER); a
row's `pepper_version` says which layer it is at. While the rotation job runs, lookups compute
both the current and the previous version and match either.

The fingerprint people see (admin, audit, API) is derived from digest_v1, so it stays the same
across rotations, and being keyed it says nothing about the identifier.
"""

import hashlib
import hmac
import re
from functools import cache

from django.conf import settings

TOKEN_RE = re.compile(r"^[0-9a-f]{128}$")
FINGERPRINT_LENGTH = 16


@cache
def configured_peppers() -> tuple[bytes, ...]:
    return tuple(
        _pepper_bytes(p) for p in [*settings.REGISTRY_PREVIOUS_PEPPERS, settings.REGISTRY_PEPPER]
    )


def _pepper_bytes(value: str) -> bytes:
    value = value.strip()
    try:
        return bytes.fromhex(value)
    except ValueError:
        return value.encode()


def current_pepper_version() -> int:
    return len(configured_peppers())


def is_token(value: object) -> bool:
    return isinstance(value, str) and TOKEN_RE.match(value) is not None


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def digest_layers(token: str) -> list[bytes]:
    """[digest_v1, digest_v2, ..., digest_vcurrent] for one token."""
    peppers = configured_peppers()
    layers = [_hmac(peppers[0], bytes.fromhex(token))]
    for pepper in peppers[1:]:
        layers.append(_hmac(pepper, layers[-1]))
    return layers


def rotate_digest(digest: bytes, to_version: int) -> bytes:
    """Apply pepper `to_version` over a digest at version to_version - 1."""
    return _hmac(configured_peppers()[to_version - 1], digest)


def fingerprint_of_v1(digest_v1: bytes) -> str:
    return hashlib.sha256(b"registry-fingerprint\0" + digest_v1).hexdigest()[:FINGERPRINT_LENGTH]


def digest_and_fingerprint(token: str) -> tuple[bytes, str]:
    layers = digest_layers(token)
    return layers[-1], fingerprint_of_v1(layers[0])


def short(digest: bytes) -> str:
    """A log-safe handle for a stored digest (never the digest itself)."""
    return hashlib.sha256(b"registry-log\0" + bytes(digest)).hexdigest()[:12]

"""Standard Webhooks (https://www.standardwebhooks.com/) signatures, for members receiving the
registry's alert deliveries: :func:`verify_webhook` checks one delivery.

A delivery carries ``webhook-id`` (the alert id: use it to ignore a repeat, deliveries are
at-least-once), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: one or more
space-separated ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
endpoint's secret (``whsec_`` + base64 of the key, shown once when the endpoint is created).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "sign_webhook", "verify_webhook"]

DEFAULT_TOLERANCE = 300  # seconds between the delivery's timestamp and now, either way
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class WebhookVerificationError(Exception):
    """The delivery is not from the registry (bad or missing signature) or is too old."""


def _key(secret: str) -> bytes:
    text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) of one delivery."""
    payload = body.encode() if isinstance(body, str) else body
    content = f"{msg_id}.{int(timestamp)}.".encode() + payload
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """Check one delivery and return its parsed body (``{"type", "timestamp", "data"}``).
    Raises :class:`WebhookVerificationError` when a header is missing, the timestamp is more
    than ``tolerance`` seconds away from now (a replay), or no signature matches. Header
    names are matched case-insensitively."""
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("bad webhook-timestamp") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp too far from now")
    expected = sign_webhook(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            payload = body.decode() if isinstance(body, bytes) else body
            return json.loads(payload)
    raise WebhookVerificationError("no matching signature")

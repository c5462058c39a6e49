"""Member-side library of the consortium fraud registry.

Raw identifiers never leave the member: :mod:`registry_client.canonical` brings them to their
canonical form, :mod:`registry_client.oprf` blinds them for the registry's oblivious PRF, and
:class:`registry_client.Client` sends only blinded elements and tokens.
"""

from __future__ import annotations

__version__ = "1.0.0"

from .canonical import KINDS, CanonicalizationError, canonicalize
from .client import Client
from .errors import (
    AuthenticationError,
    ConflictError,
    IdempotencyMismatchError,
    IdentifierNotOnCaseError,
    KeyMismatchError,
    NotEnoughEvaluatorsError,
    NotFoundError,
    PermissionDeniedError,
    ProofError,
    RateLimitedError,
    RegistryError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)
from .pii import looks_like_raw_identifier
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "KINDS",
    "AuthenticationError",
    "CanonicalizationError",
    "Client",
    "ConflictError",
    "IdempotencyMismatchError",
    "IdentifierNotOnCaseError",
    "KeyMismatchError",
    "NotEnoughEvaluatorsError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProofError",
    "RateLimitedError",
    "RegistryError",
    "ServiceUnavailableError",
    "TransportError",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "canonicalize",
    "looks_like_raw_identifier",
    "verify_webhook",
]

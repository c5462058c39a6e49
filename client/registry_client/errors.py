"""Exceptions raised by :class:`registry_client.client.Client`.

Every server error is an RFC 9457 problem document; it is kept whole in ``.problem`` and its
``code`` and ``status`` are copied to attributes. Messages are built from the status, the code
and the problem's title only, never from anything the caller passed in, so logging an
exception can never leak a raw identifier.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "IdempotencyMismatchError",
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
    "error_for_problem",
]


class RegistryError(Exception):
    """Any failure talking to the registry.

    ``status`` is the HTTP status (``None`` when the request never got an answer or was refused
    on this side before sending), ``code`` the problem's machine-readable code and ``problem``
    the full RFC 9457 document (an empty dict when there was none).
    """

    default_code = "error"

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        problem: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.code = code or str(self.problem.get("code") or self.default_code)
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        title = self.problem.get("title")
        parts = [f"HTTP {self.status}" if self.status else "registry", self.code]
        if isinstance(title, str) and title:
            parts.append(title[:200])
        return ": ".join(parts)


class AuthenticationError(RegistryError):
    """401: the API key is missing, unknown or revoked."""

    default_code = "unauthenticated"


class PermissionDeniedError(RegistryError):
    """403: the key lacks the scope for this call."""

    default_code = "forbidden_scope"


class NotFoundError(RegistryError):
    """404: no such object among the caller's own (the registry never says 403 here)."""

    default_code = "not_found"


class ValidationError(RegistryError):
    """400: the request was refused; ``errors`` lists ``{"pointer", "code", "detail"}``."""

    default_code = "validation_error"

    def __init__(
        self,
        status: int | None = 400,
        code: str | None = None,
        problem: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(status, code, problem, message)
        errors = self.problem.get("errors")
        self.errors: list[dict[str, Any]] = list(errors) if isinstance(errors, list) else []


class ConflictError(RegistryError):
    """409: ``conflict`` (duplicate live reference, open dispute) or ``invalid_transition``."""

    default_code = "conflict"


class IdempotencyMismatchError(RegistryError):
    """422: the Idempotency-Key was already used with another body."""

    default_code = "idempotency_mismatch"


class IdentifierNotOnCaseError(RegistryError):
    """422: the identifier sent with a dispute is not one of the case's (or there is no such
    live case: the registry gives the same answer for both)."""

    default_code = "identifier_not_on_case"


class RateLimitedError(RegistryError):
    """429: over the member's rate limit or quota; ``retry_after`` in seconds when given."""

    default_code = "rate_limited"
    retry_after: float | None = None


class ServiceUnavailableError(RegistryError):
    """503: the registry is temporarily unable to answer; ``retry_after`` when given."""

    default_code = "service_unavailable"
    retry_after: float | None = None


class TransportError(RegistryError):
    """No HTTP answer (connection refused or reset, timeout) after all retries."""

    default_code = "transport_error"


class KeyMismatchError(RegistryError):
    """The registry answered with another OPRF key than the one this client is pinned to.

    Tokens under different keys never match, so mixing them would silently lose matches.
    """

    default_code = "key_id_mismatch"


class ProofError(RegistryError):
    """An evaluator's answer whose DLEQ proof does not verify against its published public key
    (or that does not fit the key document): no token is made from it. ``evaluator`` names it.
    """

    default_code = "invalid_proof"

    def __init__(self, evaluator: str, reason: str = "the proof does not verify") -> None:
        self.evaluator = evaluator
        super().__init__(code=self.default_code, message=f"evaluator {evaluator!r}: {reason}")


class NotEnoughEvaluatorsError(RegistryError):
    """Fewer than ``threshold`` custodians gave a verified answer; ``failures`` names each
    evaluator that did not, with why (down, timeout, bad proof)."""

    default_code = "not_enough_evaluators"

    def __init__(self, threshold: int, failures: dict[str, str]) -> None:
        self.threshold = threshold
        self.failures = dict(failures)
        described = ", ".join(f"{name}: {why}" for name, why in sorted(failures.items()))
        super().__init__(
            code=self.default_code,
            message=f"fewer than {threshold} verified evaluations ({described})",
        )


_BY_STATUS: dict[int, type[RegistryError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: IdempotencyMismatchError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def error_for_problem(status: int, problem: dict[str, Any] | None) -> RegistryError:
    """Build the exception for an HTTP error answer (``problem`` may be empty or partial)."""
    cls = _BY_STATUS.get(status, RegistryError)
    code = problem.get("code") if isinstance(problem, dict) else None
    if status == 422 and code == IdentifierNotOnCaseError.default_code:
        cls = IdentifierNotOnCaseError
    return cls(status=status, problem=problem if isinstance(problem, dict) else None)

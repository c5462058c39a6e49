"""Errors raised by services and selectors. They carry the contract's error code and HTTP
status; the API turns them into RFC 9457 problem details (api/problems.py) and the admin
into messages. Details never contain a raw identifier or a token."""

from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy as _


@dataclass
class FieldError:
    pointer: str  # JSON pointer into the request body, e.g. /identifiers/3/token
    code: str
    detail: str

    def as_dict(self) -> dict:
        return {"pointer": self.pointer, "code": self.code, "detail": str(self.detail)}


@dataclass
class RegistryError(Exception):
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)

    status = 400
    code = "validation_error"
    title = _("Invalid request")

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class ValidationFailed(RegistryError):
    pass


class RawPiiRejected(RegistryError):
    code = "raw_pii_rejected"
    title = _("Raw personal data refused")


class BatchTooLarge(RegistryError):
    code = "batch_too_large"
    title = _("Batch too large")


class NotFound(RegistryError):
    status = 404
    code = "not_found"
    title = _("Not found")


class Conflict(RegistryError):
    status = 409
    code = "conflict"
    title = _("Conflict")


class InvalidTransition(RegistryError):
    status = 409
    code = "invalid_transition"
    title = _("Invalid state transition")


class IdempotencyMismatch(RegistryError):
    status = 422
    code = "idempotency_mismatch"
    title = _("Idempotency key reused with another request")


class IdentifierNotOnCase(RegistryError):
    """A dispute must prove that the filing member holds one of the case's identifiers. The
    same answer whether the case exists or not, so that it tells nothing to a member that
    could not have seen the case."""

    status = 422
    code = "identifier_not_on_case"
    title = _("Identifier not on the case")


class RateLimited(RegistryError):
    status = 429
    code = "rate_limited"
    title = _("Too many requests")
    retry_after: int = 60


class ServiceUnavailable(RegistryError):
    status = 503
    code = "service_unavailable"
    title = _("Service unavailable")
    retry_after: int = 5

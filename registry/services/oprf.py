"""Token evaluation (RFC 9497 VOPRF, ristretto255-SHA512) and the published key document.

Custody (spec/identifiers.md section 2): either this registry holds the whole key skS, derived
from REGISTRY_OPRF_SEED, or skS is split t-of-n among custodians. A custodian is this same
software with REGISTRY_ROLE=custodian and one share (REGISTRY_OPRF_SHARE); with custodians the
registry holds no share at all, so it cannot evaluate, and publishes the custodians instead.
Whoever evaluates proves every answer against its published public key (or public share).
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from registry_client import oprf
from registry_client.errors import RegistryError
from registry_client.evaluators import Evaluator, KeyDocument

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import BatchTooLarge, FieldError, NotFound, ValidationFailed
from registry.services.audit import audit_record

MAX_ELEMENTS = 1000
REGISTRY_EVALUATOR_ID = "registry"


@dataclass(frozen=True)
class LocalKey:
    """The scalar this process evaluates with: skS, or a custodian's share k_i."""

    scalar: bytes
    public_key: bytes  # pkS, or the public share pk_i
    evaluator: str
    key_id: str  # always the key_id of the whole key


@cache
def local_key() -> LocalKey | None:
    """This process's evaluation key, read once; None where the registry holds no share.
    Only a web process holds key material (settings.REGISTRY_PROCESS): workers and beat never
    evaluate and are not given the seed."""
    if settings.REGISTRY_PROCESS != "web":
        raise ImproperlyConfigured("Only the web process holds the OPRF key.")
    if settings.REGISTRY_ROLE == "custodian":
        return _share_key()
    if settings.REGISTRY_OPRF_KEYS_FILE:
        return None
    seed = bytes.fromhex(settings.REGISTRY_OPRF_SEED)
    sk, pk = oprf.derive_key_pair(seed, settings.REGISTRY_OPRF_KEY_INFO.encode(), oprf.VOPRF)
    return LocalKey(sk, pk, REGISTRY_EVALUATOR_ID, oprf.key_id(pk))


@cache
def key_set() -> KeyDocument:
    """The published document: the custodians from the ceremony's file, or this registry."""
    if settings.REGISTRY_OPRF_KEYS_FILE:
        return read_key_set(Path(settings.REGISTRY_OPRF_KEYS_FILE))
    key = local_key()
    evaluator = Evaluator(key.evaluator, 0, "", key.public_key)
    return KeyDocument(key.key_id, key.public_key, 1, (evaluator,))


def server_key() -> tuple[bytes, bytes, str]:
    """(scalar, public key, key_id) of this process; refuses where it holds no share."""
    key = local_key()
    if key is None:
        raise ImproperlyConfigured("This registry holds no OPRF key share (custodians do).")
    return key.scalar, key.public_key, key.key_id


def read_key_set(path: Path) -> KeyDocument:
    """The ceremony's public document, checked as members check it (key_id of the key, and
    public shares that are shares of exactly that key)."""
    try:
        return KeyDocument.parse(json.loads(path.read_text(encoding="utf-8")), None)
    except RegistryError:
        raise ImproperlyConfigured(f"{path}: not a valid VOPRF key document") from None


def _share_key() -> LocalKey:
    try:
        share = json.loads(settings.REGISTRY_OPRF_SHARE)
        scalar = bytes.fromhex(share["share"])
        public_share = oprf.public_share(scalar)
    except (ValueError, KeyError, TypeError, oprf.OprfError):
        raise ImproperlyConfigured("REGISTRY_OPRF_SHARE is not a share file") from None
    if public_share.hex() != share["public_share"]:
        raise ImproperlyConfigured("REGISTRY_OPRF_SHARE: share and public share differ")
    return LocalKey(scalar, public_share, share["id"], share["key_id"])


def oprf_evaluate(*, actor: Actor, blinded_elements: list[str]) -> dict:
    """Evaluate a batch with this process's key (share) and prove it: the evaluate answer."""
    key = local_key()
    if key is None:
        raise NotFound("This registry does not evaluate: its key is held by custodians.")
    if len(blinded_elements) > MAX_ELEMENTS:
        raise BatchTooLarge(f"Send at most {MAX_ELEMENTS} blinded elements per call.")
    if not blinded_elements:
        raise ValidationFailed(
            "Send at least one blinded element.",
            [FieldError("/blinded_elements", "required", "At least one element.")],
        )
    blinded, evaluated = _evaluate_all(key.scalar, blinded_elements)
    proof = oprf.generate_proof(key.scalar, key.public_key, blinded, evaluated)
    # One event per call with counts only: the elements themselves say nothing, but there is
    # no reason to keep them.
    audit_record(
        actor=actor,
        action=AuditAction.OPRF_EVALUATED,
        object_type="oprf",
        details={"elements": len(evaluated), "key_id": key.key_id, "evaluator": key.evaluator},
    )
    return {
        "key_id": key.key_id,
        "evaluator": key.evaluator,
        "evaluated_elements": [element.hex() for element in evaluated],
        "proof": proof.hex(),
    }


def _evaluate_all(scalar: bytes, texts: list) -> tuple[list[bytes], list[bytes]]:
    """(blinded, evaluated) elements. BlindEvaluate checks each element itself (canonical
    encoding, not the identity), so every element is decoded once; all the bad ones are named
    by pointer, none echoed."""
    blinded, evaluated, errors = [], [], []
    for index, text in enumerate(texts):
        try:
            raw = _element_bytes(text)
            evaluated.append(oprf.blind_evaluate(scalar, raw))
            blinded.append(raw)
        except oprf.InvalidElement as exc:
            errors.append(FieldError(f"/blinded_elements/{index}", "invalid_element", str(exc)))
    if errors:
        raise ValidationFailed("Some blinded elements are not valid ristretto255 points.", errors)
    return blinded, evaluated


def _element_bytes(text: object) -> bytes:
    """The shape checks of parse_element_hex; the point itself is checked by BlindEvaluate."""
    if not isinstance(text, str) or len(text) != 2 * oprf.ELEMENT_BYTES:
        raise oprf.InvalidElement("length")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise oprf.InvalidElement("hex") from None

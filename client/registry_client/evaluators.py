"""Who evaluates tokens, and how their answers are checked and combined (contract v2).

The registry publishes a key document at ``GET /api/v1/oprf/keys``: the public key, its
key_id, the threshold t and the evaluators. Either one evaluator holds the whole key (index 0,
usually the registry itself), or n custodians each hold a Shamir share with a published public
share. Every answer carries a DLEQ proof; an answer whose proof fails is never used. With
custodians, any t verified answers are combined with Lagrange coefficients, so up to n - t
custodians may be down, slow or lying.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from . import oprf
from .errors import KeyMismatchError, NotEnoughEvaluatorsError, ProofError, RegistryError

__all__ = ["MODE", "SUITE", "Evaluator", "KeyDocument", "evaluate_verified"]

logger = logging.getLogger("registry_client")


@dataclass(frozen=True)
class Evaluator:
    id: str
    index: int
    url: str
    public_key: bytes


SUITE = "ristretto255-SHA512"
MODE = "voprf"


@dataclass(frozen=True)
class KeyDocument:
    """What ``GET /api/v1/oprf/keys`` publishes (the registry builds it with this class too):
    the key and who can evaluate under it."""

    key_id: str
    public_key: bytes
    threshold: int
    evaluators: tuple[Evaluator, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "suite": SUITE,
            "mode": MODE,
            "key_id": self.key_id,
            "public_key": self.public_key.hex(),
            "threshold": self.threshold,
            "evaluators": [
                {"id": e.id, "index": e.index, "url": e.url, "public_key": e.public_key.hex()}
                for e in self.evaluators
            ],
        }

    @property
    def single(self) -> bool:
        """One party holds the whole key (the registry, in a single-operator deployment)."""
        return len(self.evaluators) == 1 and self.evaluators[0].index == 0

    @classmethod
    def parse(cls, data: object, pinned_key_id: str | None) -> KeyDocument:
        """Check the published document before trusting it: suite and mode, key_id of the
        public key, the pin, and (with custodians) that the public shares are shares of
        exactly that public key."""
        try:
            document = _parse(data)
        except (KeyError, TypeError, ValueError, oprf.OprfError):
            raise RegistryError(code="invalid_response") from None
        if pinned_key_id is not None and document.key_id != pinned_key_id:
            raise KeyMismatchError()
        if not document.single:
            _check_shares(document)
        return document


def _parse(data: Any) -> KeyDocument:
    if data["suite"] != SUITE or data["mode"] != MODE:
        raise ValueError("suite")
    public_key = oprf.decode_element(bytes.fromhex(data["public_key"]))
    if oprf.key_id(public_key) != data["key_id"]:
        raise ValueError("key_id")
    evaluators = tuple(
        Evaluator(
            str(item["id"]),
            int(item["index"]),
            str(item["url"]),
            oprf.decode_element(bytes.fromhex(item["public_key"])),
        )
        for item in data["evaluators"]
    )
    threshold = int(data["threshold"])
    if not evaluators or not 1 <= threshold <= len(evaluators):
        raise ValueError("threshold")
    if len({e.index for e in evaluators}) != len(evaluators):
        raise ValueError("index")
    return KeyDocument(str(data["key_id"]), public_key, threshold, evaluators)


def _check_shares(document: KeyDocument) -> None:
    """Every t of the public shares must combine to the public key (Lagrange at 0 "in the
    exponent"): a document whose shares do not, would let a custodian answer under a key of
    its own with a valid proof."""
    by_index = {e.index: [e.public_key] for e in document.evaluators}
    if 0 in by_index:
        raise RegistryError(code="invalid_response")
    for subset in itertools.combinations(sorted(by_index), document.threshold):
        combined = oprf.combine_evaluations({i: by_index[i] for i in subset})[0]
        if combined != document.public_key:
            raise RegistryError(code="invalid_response")


# An evaluator call: (evaluator, hex elements) -> the answer's JSON; raises RegistryError.
Call = Callable[[Evaluator, list[str]], Any]


def evaluate_verified(document: KeyDocument, blinded: Sequence[bytes], call: Call) -> list[bytes]:
    """Evaluated elements under the whole key, from verified answers only."""
    body = [element.hex() for element in blinded]
    if document.single:
        evaluator = document.evaluators[0]
        return _verified(document, evaluator, blinded, call(evaluator, body))
    answers: dict[int, list[bytes]] = {}
    failures: dict[str, str] = {}
    # All custodians are asked at once; the first t verified answers are enough, so a slow
    # custodian costs nothing once t others have answered.
    pool = ThreadPoolExecutor(max_workers=len(document.evaluators))
    try:
        futures = {pool.submit(call, e, body): e for e in document.evaluators}
        for future in as_completed(futures):
            evaluator = futures[future]
            try:
                answers[evaluator.index] = _verified(document, evaluator, blinded, future.result())
            except ProofError as error:
                logger.warning("evaluator %s skipped: %s", evaluator.id, error)
                failures[evaluator.id] = "invalid_proof"
            except RegistryError as error:
                failures[evaluator.id] = error.code
            if len(answers) == document.threshold:
                return oprf.combine_evaluations(answers)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    raise NotEnoughEvaluatorsError(document.threshold, failures)


def _verified(
    document: KeyDocument, evaluator: Evaluator, blinded: Sequence[bytes], answer: object
) -> list[bytes]:
    """The answer's elements, once its key_id, evaluator, shape and proof all check out."""
    if not isinstance(answer, Mapping):
        raise RegistryError(code="invalid_response")
    if answer.get("key_id") != document.key_id:
        raise KeyMismatchError()
    if answer.get("evaluator") != evaluator.id:
        raise ProofError(evaluator.id, "answered under another evaluator's name")
    elements = answer.get("evaluated_elements")
    if not isinstance(elements, list) or len(elements) != len(blinded):
        raise ProofError(evaluator.id, "answered a different number of elements")
    try:
        evaluated = [oprf.parse_element_hex(element) for element in elements]
        proof = bytes.fromhex(str(answer.get("proof", "")))
        oprf.verify_proof(evaluator.public_key, list(blinded), evaluated, proof)
    except (ValueError, oprf.OprfError):
        raise ProofError(evaluator.id) from None
    return evaluated

"""RFC 9497 VOPRF mode (0x01), ristretto255-SHA512: every field of the official vectors, proofs
included, and t-of-n key shares that combine to the same evaluation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from registry_client import oprf

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
SUITE = json.loads((VECTORS / "voprf-ristretto255-sha512.json").read_text(encoding="utf-8"))


def _key() -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(
        bytes.fromhex(SUITE["seed"]), bytes.fromhex(SUITE["keyInfo"]), oprf.VOPRF
    )


def _hex_list(text: str) -> list[bytes]:
    return [bytes.fromhex(part) for part in text.split(",")]


def test_it_uses_the_suite_of_the_vectors():
    assert SUITE["identifier"] == "ristretto255-SHA512"
    assert SUITE["mode"] == 1
    assert bytes.fromhex(SUITE["groupDST"]) == oprf.VOPRF.hash_to_group_dst


def test_it_derives_the_vector_key_pair():
    sk, pk = _key()
    assert sk.hex() == SUITE["skSm"]
    assert pk.hex() == SUITE["pkSm"]


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=lambda v: f"batch{v['Batch']}")
def test_it_reproduces_every_field_of_each_vector(vector):
    sk, pk = _key()
    inputs = _hex_list(vector["Input"])
    blinds = _hex_list(vector["Blind"])
    pairs = [oprf.blind(x, b, oprf.VOPRF) for x, b in zip(inputs, blinds, strict=True)]
    blinded = [element for _, element in pairs]
    assert ",".join(e.hex() for e in blinded) == vector["BlindedElement"]
    evaluated = oprf.blind_evaluate_many(sk, blinded)
    assert ",".join(e.hex() for e in evaluated) == vector["EvaluationElement"]
    proof = oprf.generate_proof(sk, pk, blinded, evaluated, bytes.fromhex(vector["Proof"]["r"]))
    assert proof.hex() == vector["Proof"]["proof"]
    oprf.verify_proof(pk, blinded, evaluated, proof)
    outputs = [
        oprf.finalize(x, b, z) for x, (b, _), z in zip(inputs, pairs, evaluated, strict=True)
    ]
    assert ",".join(o.hex() for o in outputs) == vector["Output"]
    assert [oprf.evaluate(sk, x).hex() for x in inputs] == vector["Output"].split(",")


def test_it_refuses_a_proof_for_another_key():
    sk, pk = _key()
    _, other_pk = oprf.derive_key_pair(bytes(32), b"another key")
    blinded = [oprf.blind(b"\x00")[1]]
    evaluated = oprf.blind_evaluate_many(sk, blinded)
    proof = oprf.generate_proof(sk, pk, blinded, evaluated)
    with pytest.raises(oprf.InvalidProof):
        oprf.verify_proof(other_pk, blinded, evaluated, proof)


def test_it_refuses_a_proof_when_one_answer_of_a_batch_is_swapped():
    sk, pk = _key()
    blinded = [oprf.blind(bytes([n]))[1] for n in range(3)]
    evaluated = oprf.blind_evaluate_many(sk, blinded)
    proof = oprf.generate_proof(sk, pk, blinded, evaluated)
    lied = [*evaluated[:2], oprf.hash_to_group(b"a guess")]
    with pytest.raises(oprf.InvalidProof):
        oprf.verify_proof(pk, blinded, lied, proof)


@pytest.mark.parametrize("proof", [b"", bytes(63), b"\xff" * 64])
def test_it_refuses_proofs_of_the_wrong_shape(proof):
    sk, pk = _key()
    blinded = [oprf.blind(b"\x00")[1]]
    with pytest.raises(oprf.InvalidProof):
        oprf.verify_proof(pk, blinded, oprf.blind_evaluate_many(sk, blinded), proof)


def test_it_gives_different_outputs_in_the_two_modes():
    seed, info = bytes.fromhex(SUITE["seed"]), bytes.fromhex(SUITE["keyInfo"])
    sk_v, _ = oprf.derive_key_pair(seed, info, oprf.VOPRF)
    sk_o, _ = oprf.derive_key_pair(seed, info, oprf.OPRF)
    assert sk_v != sk_o
    assert oprf.evaluate(sk_v, b"x", oprf.VOPRF) != oprf.evaluate(sk_v, b"x", oprf.OPRF)


@pytest.mark.parametrize("chosen", list(itertools.combinations([1, 2, 3], 2)))
def test_it_combines_any_two_of_three_shares_into_the_vector_evaluation(chosen):
    sk, _ = _key()
    shares = dict(oprf.split_key(sk, threshold=2, count=3))
    vector = SUITE["vectors"][0]
    blinded = [bytes.fromhex(vector["BlindedElement"])]
    answers = {}
    for index in chosen:
        evaluated = oprf.blind_evaluate_many(shares[index], blinded)
        share_pk = oprf.public_share(shares[index])
        oprf.verify_proof(
            share_pk,
            blinded,
            evaluated,
            oprf.generate_proof(shares[index], share_pk, blinded, evaluated),
        )
        answers[index] = evaluated
    combined = oprf.combine_evaluations(answers)
    assert combined[0].hex() == vector["EvaluationElement"]
    blind = bytes.fromhex(vector["Blind"])
    assert (
        oprf.finalize(bytes.fromhex(vector["Input"]), blind, combined[0]).hex() == vector["Output"]
    )


def test_it_gets_a_wrong_answer_from_one_share_alone():
    sk, _ = _key()
    shares = dict(oprf.split_key(sk, threshold=2, count=3))
    blinded = [bytes.fromhex(SUITE["vectors"][0]["BlindedElement"])]
    alone = oprf.combine_evaluations({1: oprf.blind_evaluate_many(shares[1], blinded)})
    assert alone[0].hex() != SUITE["vectors"][0]["EvaluationElement"]

"""RFC 9497 mode OPRF (0x00), ristretto255-SHA512, against the official test vectors: the registry
uses mode VOPRF, and these check the primitives both modes share. Plus refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry_client import oprf

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
SUITE = json.loads((VECTORS / "oprf-ristretto255-sha512.json").read_text(encoding="utf-8"))
FIELD_PRIME = 2**255 - 19


def _key() -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(
        bytes.fromhex(SUITE["seed"]), bytes.fromhex(SUITE["keyInfo"]), oprf.OPRF
    )


def _valid_element() -> bytes:
    return oprf.hash_to_group(b"any input")


def test_it_uses_the_suite_of_the_vectors():
    assert SUITE["identifier"] == "ristretto255-SHA512"
    assert SUITE["mode"] == 0
    assert bytes.fromhex(SUITE["groupDST"]) == oprf.OPRF.hash_to_group_dst


def test_it_derives_the_vector_private_key():
    sk, pk = _key()
    assert sk.hex() == SUITE["skSm"]
    assert len(pk) == 32


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=lambda v: v["Input"][:8])
def test_it_reproduces_every_field_of_each_vector(vector):
    sk, _ = _key()
    private_input = bytes.fromhex(vector["Input"])
    blind, blinded = oprf.blind(private_input, bytes.fromhex(vector["Blind"]), oprf.OPRF)
    assert blinded.hex() == vector["BlindedElement"]
    evaluated = oprf.blind_evaluate(sk, blinded)
    assert evaluated.hex() == vector["EvaluationElement"]
    output = oprf.finalize(private_input, blind, evaluated)
    assert output.hex() == vector["Output"]
    assert oprf.evaluate(sk, private_input, oprf.OPRF).hex() == vector["Output"]


def test_it_evaluates_batches_like_single_elements():
    sk, _ = _key()
    blinded = [oprf.blind(bytes([n]))[1] for n in range(5)]
    assert oprf.blind_evaluate_many(sk, blinded) == [oprf.blind_evaluate(sk, b) for b in blinded]


def test_it_round_trips_blind_evaluate_finalize_to_evaluate():
    sk, _ = oprf.derive_key_pair(bytes(32), b"consortium-registry/oprf/v2")
    private_input = oprf.oprf_input("phone", "+8613812345678")
    blind, blinded = oprf.blind(private_input)
    output = oprf.finalize(private_input, blind, oprf.blind_evaluate(sk, blinded))
    assert output == oprf.evaluate(sk, private_input)
    assert len(oprf.token_hex(output)) == 128


def test_it_draws_a_fresh_blind_each_time():
    first_blind, first = oprf.blind(b"same input")
    second_blind, second = oprf.blind(b"same input")
    assert first_blind != second_blind and first != second


def test_it_keeps_kinds_apart_in_the_input():
    assert oprf.oprf_input("phone", "+8613812345678") == b"phone\x00+8613812345678"
    sk, _ = _key()
    assert oprf.evaluate(sk, oprf.oprf_input("imei", "1")) != oprf.evaluate(
        sk, oprf.oprf_input("bank_card", "1")
    )


def test_it_names_a_key_by_the_sha256_of_its_public_key():
    _, pk = _key()
    assert oprf.key_id(pk) == hashlib.sha256(pk).hexdigest()[:16]


def test_it_refuses_the_identity_element():
    sk, _ = _key()
    with pytest.raises(oprf.InvalidElement) as refused:
        oprf.decode_element(bytes(32))
    assert refused.value.reason == "identity"
    with pytest.raises(oprf.InvalidElement):
        oprf.blind_evaluate(sk, bytes(32))
    with pytest.raises(oprf.InvalidElement):
        oprf.finalize(b"x", oprf.blind(b"x")[0], bytes(32))
    with pytest.raises(oprf.InvalidElement):
        oprf.parse_element_hex("00" * 32)


@pytest.mark.parametrize(
    "encoding",
    [
        FIELD_PRIME.to_bytes(32, "little"),  # s = p: not reduced
        (FIELD_PRIME + 2).to_bytes(32, "little"),  # s = p + 2 = 2 (mod p), non-canonical
        bytes(31) + b"\x80",  # high bit set
        (1).to_bytes(32, "little"),  # s = 1 is negative (odd): not a canonical encoding
        b"\xff" * 32,
    ],
    ids=["p", "p+2", "high-bit", "negative", "all-ff"],
)
def test_it_refuses_non_canonical_encodings(encoding):
    sk, _ = _key()
    with pytest.raises(oprf.InvalidElement) as refused:
        oprf.decode_element(encoding)
    assert refused.value.reason == "encoding"
    with pytest.raises(oprf.InvalidElement):
        oprf.blind_evaluate(sk, encoding)
    with pytest.raises(oprf.InvalidElement):
        oprf.parse_element_hex(encoding.hex())


def test_it_refuses_a_high_bit_on_a_valid_element():
    element = bytearray(_valid_element())
    element[31] |= 0x80
    with pytest.raises(oprf.InvalidElement):
        oprf.decode_element(bytes(element))


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_it_refuses_wrong_lengths(length):
    with pytest.raises(oprf.InvalidElement) as refused:
        oprf.decode_element(b"\x01" * length)
    assert refused.value.reason == "length"
    with pytest.raises(oprf.InvalidElement):
        oprf.parse_element_hex("01" * length)


@pytest.mark.parametrize("text", ["zz" * 32, "0x" + "00" * 31, " " + "a" * 63, "é" * 64, None, 42])
def test_it_refuses_non_hex_text(text):
    with pytest.raises(oprf.InvalidElement):
        oprf.parse_element_hex(text)


def test_it_accepts_a_valid_element_in_any_hex_case():
    element = _valid_element()
    assert oprf.parse_element_hex(element.hex().upper()) == element


def test_it_refuses_out_of_range_scalars():
    element = _valid_element()
    order = oprf.GROUP_ORDER.to_bytes(32, "little")
    for scalar in (bytes(32), order, b"\x01" * 31):
        with pytest.raises(oprf.OprfError):
            oprf.blind_evaluate(scalar, element)
        with pytest.raises(oprf.OprfError):
            oprf.blind(b"input", scalar)


def test_it_never_puts_the_element_in_the_error_message():
    encoding = bytes(31) + b"\x80"
    with pytest.raises(oprf.InvalidElement) as refused:
        oprf.decode_element(encoding)
    assert encoding.hex() not in str(refused.value)


def test_it_expands_messages_per_rfc_9380():
    # RFC 9380 Appendix K.3 (expand_message_xmd, SHA-512), msg="", len_in_bytes=0x20
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    assert oprf.expand_message_xmd(b"", dst, 0x20).hex() == (
        "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"
    )

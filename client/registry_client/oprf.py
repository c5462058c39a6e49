"""RFC 9497 VOPRF (mode 0x01) and OPRF (mode 0x00), suite ristretto255-SHA512, over libsodium.

The member blinds its input, an evaluator multiplies the blinded element by its private key (or
key share) and proves it did so with the published key (a batched DLEQ proof, RFC 9497 section
2.2), and the member checks the proof, unblinds and hashes the answer into a 64-byte output (the
*token*). The evaluator never sees the input and the member never sees the key. With the key
split t-of-n among custodians (Shamir over the scalar field), any t verified answers combine
with Lagrange coefficients into the answer of the whole key: the token does not change.

The registry uses mode VOPRF (contract v2); mode OPRF stays for its test vectors, which check
the primitives both modes share.

This module is shared by the member-side client and the registry server, so it is pure: no I/O,
no global state, only bytes in and bytes out. Group arithmetic comes from libsodium (>= 1.0.18)
through ``pysodium``; everything else (expand_message_xmd, the DSTs, the transcript hashes) is
written out here, following RFC 9497 sections 2 and 3 and RFC 9380 section 5.3.1.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import pysodium

__all__ = [
    "ELEMENT_BYTES",
    "OPRF",
    "OUTPUT_BYTES",
    "SCALAR_BYTES",
    "VOPRF",
    "DeriveKeyPairError",
    "InvalidElement",
    "InvalidInput",
    "InvalidProof",
    "InvalidScalar",
    "OprfError",
    "Suite",
    "blind",
    "blind_evaluate",
    "blind_evaluate_many",
    "combine_evaluations",
    "decode_element",
    "derive_key_pair",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "generate_proof",
    "hash_to_group",
    "hash_to_scalar",
    "key_id",
    "lagrange_coefficient",
    "oprf_input",
    "parse_element_hex",
    "public_share",
    "split_key",
    "token_hex",
    "verify_proof",
]

MODE_OPRF = 0x00
MODE_VOPRF = 0x01


@dataclass(frozen=True)
class Suite:
    """ristretto255-SHA512 in one mode: the mode is part of every domain separation tag, so
    the same key and input give different outputs in OPRF and VOPRF mode."""

    mode: int
    # contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier  (RFC 9497 section 3.1)
    context: bytes = field(init=False)
    hash_to_group_dst: bytes = field(init=False)
    hash_to_scalar_dst: bytes = field(init=False)
    derive_key_pair_dst: bytes = field(init=False)
    seed_dst: bytes = field(init=False)

    def __post_init__(self) -> None:
        context = b"OPRFV1-" + bytes([self.mode]) + b"-ristretto255-SHA512"
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "hash_to_group_dst", b"HashToGroup-" + context)
        object.__setattr__(self, "hash_to_scalar_dst", b"HashToScalar-" + context)
        # The one DST without a hyphen (RFC 9497 section 3.2.1); easy to get wrong.
        object.__setattr__(self, "derive_key_pair_dst", b"DeriveKeyPair" + context)
        object.__setattr__(self, "seed_dst", b"Seed-" + context)


OPRF = Suite(MODE_OPRF)
VOPRF = Suite(MODE_VOPRF)  # the registry's mode (contract v2)
CONTEXT_STRING = VOPRF.context
PROOF_BYTES = 64  # c || s

ELEMENT_BYTES = 32  # Ne: serialized ristretto255 element
SCALAR_BYTES = 32  # Ns: little-endian scalar mod the group order
OUTPUT_BYTES = 64  # Nh: SHA-512
_UNIFORM_BYTES = 64  # ristretto255 maps take 64 uniform bytes (RFC 9380 / RFC 9496)

# Order of the ristretto255 group: 2^252 + 27742317777372353535851937790883648493.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
_FIELD_PRIME = 2**255 - 19
_IDENTITY = bytes(ELEMENT_BYTES)  # the identity's canonical encoding is 32 zero bytes


class OprfError(ValueError):
    """Base class of every error raised by this module."""


class InvalidElement(OprfError):
    """A serialized group element that must be refused.

    ``reason`` is a short machine-readable word (``length``, ``hex``, ``encoding``,
    ``identity``); it never contains the offending bytes.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid ristretto255 element: {reason}")
        self.reason = reason


class InvalidScalar(OprfError):
    """A scalar that is not a canonical, non-zero little-endian integer below the group order."""


class InvalidInput(OprfError):
    """The private input hashes to the identity element (RFC 9497 InvalidInputError)."""


class InvalidProof(OprfError):
    """A DLEQ proof that does not verify, or that is not two canonical scalars."""


class DeriveKeyPairError(OprfError):
    """No non-zero scalar after 256 attempts (practically impossible, RFC 9497 section 3.2.1)."""


# --------------------------------------------------------------------------------------------
# Hashing to the group and to scalars
# --------------------------------------------------------------------------------------------


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """expand_message_xmd with SHA-512 (RFC 9380 section 5.3.1)."""
    b_in_bytes = 64  # SHA-512 output size
    s_in_bytes = 128  # SHA-512 block size
    ell = -(-length // b_in_bytes)
    if ell > 255 or length > 65535 or len(dst) > 255:
        raise OprfError("expand_message_xmd: requested length or DST too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    msg_prime = bytes(s_in_bytes) + msg + _i2osp(length, 2) + b"\x00" + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    uniform = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest()
        uniform.append(b_i)
    return b"".join(uniform)[:length]


def hash_to_group(msg: bytes, dst: bytes = VOPRF.hash_to_group_dst) -> bytes:
    """ristretto255 HashToGroup: the one-way map applied to 64 bytes of expand_message_xmd."""
    return pysodium.crypto_core_ristretto255_from_hash(expand_message_xmd(msg, dst, _UNIFORM_BYTES))


def hash_to_scalar(msg: bytes, dst: bytes = VOPRF.hash_to_scalar_dst) -> bytes:
    """ristretto255 HashToScalar: 64 uniform bytes read little-endian, reduced mod the order."""
    return pysodium.crypto_core_ristretto255_scalar_reduce(
        expand_message_xmd(msg, dst, _UNIFORM_BYTES)
    )


# --------------------------------------------------------------------------------------------
# Deserialization: everything that comes from the other party goes through these
# --------------------------------------------------------------------------------------------


def decode_element(data: bytes) -> bytes:
    """Check a serialized element from the other party and return it unchanged.

    Refuses wrong lengths, non-canonical or off-curve encodings, and the identity element
    (RFC 9497 section 2.1: DeserializeElement must reject the identity).
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) != ELEMENT_BYTES:
        raise InvalidElement("length")
    data = bytes(data)
    if hmac.compare_digest(data, _IDENTITY):
        raise InvalidElement("identity")
    # RFC 9496 section 4.3.1: the encoding is a field element s < p that is non-negative (even).
    # Checked here as well because libsodium 1.0.18 ignores the top bit (it masks it away and
    # accepts the encoding; later releases refuse it), which would make encodings malleable.
    s = int.from_bytes(data, "little")
    if s >= _FIELD_PRIME or s & 1:
        raise InvalidElement("encoding")
    if not pysodium.crypto_core_ristretto255_is_valid_point(data):
        raise InvalidElement("encoding")
    return data


def parse_element_hex(text: object) -> bytes:
    """Decode a hex-encoded element as received in JSON, then :func:`decode_element` it."""
    if not isinstance(text, str) or len(text) != 2 * ELEMENT_BYTES:
        raise InvalidElement("length")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidElement("hex") from None
    return decode_element(raw)


def _decode_scalar(data: bytes) -> bytes:
    """Accept only canonical non-zero scalars (little-endian, below the group order)."""
    if not isinstance(data, (bytes, bytearray)) or len(data) != SCALAR_BYTES:
        raise InvalidScalar("scalar must be 32 bytes")
    value = int.from_bytes(data, "little")
    if value == 0 or value >= GROUP_ORDER:
        raise InvalidScalar("scalar must be non-zero and below the group order")
    return bytes(data)


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def derive_key_pair(seed: bytes, info: bytes, suite: Suite = VOPRF) -> tuple[bytes, bytes]:
    """RFC 9497 DeriveKeyPair: deterministic (skS, pkS) from a 32-byte seed and key info."""
    if len(seed) != 32:
        raise OprfError("seed must be 32 bytes")
    if len(info) > 0xFFFF:
        raise OprfError("info too long")
    derive_input = seed + _i2osp(len(info), 2) + info
    for counter in range(256):
        sk = hash_to_scalar(derive_input + _i2osp(counter, 1), suite.derive_key_pair_dst)
        if any(sk):
            return sk, pysodium.crypto_scalarmult_ristretto255_base(sk)
    raise DeriveKeyPairError("DeriveKeyPair: no valid scalar")


def key_id(public_key: bytes) -> str:
    """Short public identifier of a key: first 16 hex characters of SHA-256(pkS)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Protocol (RFC 9497 section 3.3.1)
# --------------------------------------------------------------------------------------------


def blind(
    private_input: bytes, blind: bytes | None = None, suite: Suite = VOPRF
) -> tuple[bytes, bytes]:
    """Client step 1: return (blind scalar, serialized blinded element).

    ``blind`` is for test vectors only; in use it is left out and drawn from libsodium's CSPRNG.
    """
    if blind is None:
        # libsodium returns a uniformly random, canonical, non-zero scalar.
        blind = pysodium.crypto_core_ristretto255_scalar_random()
    blind = _decode_scalar(blind)
    input_element = hash_to_group(private_input, suite.hash_to_group_dst)
    if input_element == _IDENTITY:
        raise InvalidInput("input maps to the identity element")
    return blind, pysodium.crypto_scalarmult_ristretto255(blind, input_element)


def blind_evaluate(sk: bytes, blinded_element: bytes) -> bytes:
    """Server step: multiply a (checked) blinded element by the private key."""
    sk = _decode_scalar(sk)
    return _scalar_mult(sk, decode_element(blinded_element))


def blind_evaluate_many(sk: bytes, elements: list[bytes]) -> list[bytes]:
    """Evaluate a batch; the key is checked once. Raises on the first invalid element."""
    sk = _decode_scalar(sk)
    return [_scalar_mult(sk, decode_element(element)) for element in elements]


def finalize(private_input: bytes, blind: bytes, evaluated_element: bytes) -> bytes:
    """Client step 2: unblind the server's answer and hash it with the input (64 bytes)."""
    blind = _decode_scalar(blind)
    evaluated = decode_element(evaluated_element)
    inverse = pysodium.crypto_core_ristretto255_scalar_invert(blind)
    return _finalize_hash(private_input, _scalar_mult(inverse, evaluated))


def evaluate(sk: bytes, private_input: bytes, suite: Suite = VOPRF) -> bytes:
    """Unblinded evaluation with the key itself; equals blind -> blind_evaluate -> finalize."""
    sk = _decode_scalar(sk)
    input_element = hash_to_group(private_input, suite.hash_to_group_dst)
    if input_element == _IDENTITY:
        raise InvalidInput("input maps to the identity element")
    return _finalize_hash(private_input, _scalar_mult(sk, input_element))


def _scalar_mult(scalar: bytes, element: bytes) -> bytes:
    # libsodium fails when the product is the identity; with a prime-order group, a non-zero
    # scalar and a non-identity element that cannot happen, so this is only a guard.
    try:
        return pysodium.crypto_scalarmult_ristretto255(scalar, element)
    except ValueError:
        raise InvalidElement("identity") from None


def _finalize_hash(private_input: bytes, unblinded_element: bytes) -> bytes:
    transcript = (
        _i2osp(len(private_input), 2)
        + private_input
        + _i2osp(len(unblinded_element), 2)
        + unblinded_element
        + b"Finalize"
    )
    return hashlib.sha512(transcript).digest()


# --------------------------------------------------------------------------------------------
# Batched DLEQ proofs (RFC 9497 section 2.2): evaluated = k * blinded for the k behind pk
# --------------------------------------------------------------------------------------------


def generate_proof(
    sk: bytes,
    pk: bytes,
    blinded: list[bytes],
    evaluated: list[bytes],
    r: bytes | None = None,
    suite: Suite = VOPRF,
) -> bytes:
    """Prove that every evaluated[i] = sk * blinded[i] and pk = sk * G, in one proof (c || s).

    ``r`` is for test vectors only; in use it is drawn from libsodium's CSPRNG.
    """
    sk = _decode_scalar(sk)
    r = _decode_scalar(r) if r is not None else pysodium.crypto_core_ristretto255_scalar_random()
    composite = _composite(pk, blinded, evaluated, suite)
    m = _linear_combination(composite, blinded)
    z = _scalar_mult(sk, m)  # ComputeCompositesFast: the prover knows k
    t2 = pysodium.crypto_scalarmult_ristretto255_base(r)
    t3 = _scalar_mult(r, m)
    c = _challenge(pk, m, z, t2, t3, suite)
    s = pysodium.crypto_core_ristretto255_scalar_sub(
        r, pysodium.crypto_core_ristretto255_scalar_mul(c, sk)
    )
    return c + s


def verify_proof(
    pk: bytes,
    blinded: list[bytes],
    evaluated: list[bytes],
    proof: bytes,
    suite: Suite = VOPRF,
) -> None:
    """Raise :class:`InvalidProof` unless ``proof`` shows evaluated = k * blinded for the k of
    ``pk``. Every element must already have passed :func:`decode_element`."""
    if not isinstance(proof, (bytes, bytearray)) or len(proof) != PROOF_BYTES:
        raise InvalidProof("a proof is 64 bytes")
    c, s = bytes(proof[:SCALAR_BYTES]), bytes(proof[SCALAR_BYTES:])
    if any(int.from_bytes(x, "little") >= GROUP_ORDER for x in (c, s)):
        raise InvalidProof("proof scalars must be canonical")
    composite = _composite(pk, blinded, evaluated, suite)
    m = _linear_combination(composite, blinded)
    z = _linear_combination(composite, evaluated)  # ComputeComposites: no key needed
    t2 = _add(_mult_or_identity(s, None), _mult_or_identity(c, pk))
    t3 = _add(_mult_or_identity(s, m), _mult_or_identity(c, z))
    if not hmac.compare_digest(_challenge(pk, m, z, t2, t3, suite), c):
        raise InvalidProof("the proof does not verify against the public key")


def _composite(pk: bytes, blinded: list[bytes], evaluated: list[bytes], suite: Suite):
    """The scalars d_i of ComputeComposites: a hash of pk and both lists, one per pair."""
    if not blinded or len(blinded) != len(evaluated):
        raise InvalidProof("a proof covers one or more pairs of elements")
    seed = hashlib.sha512(_framed(pk) + _framed(suite.seed_dst)).digest()
    prefix = _framed(seed)
    return [
        hash_to_scalar(
            prefix + _i2osp(i, 2) + _framed(c) + _framed(d) + b"Composite",
            suite.hash_to_scalar_dst,
        )
        for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True))
    ]


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, suite: Suite) -> bytes:
    transcript = b"".join(_framed(part) for part in (pk, m, z, t2, t3)) + b"Challenge"
    return hash_to_scalar(transcript, suite.hash_to_scalar_dst)


def _framed(data: bytes) -> bytes:
    return _i2osp(len(data), 2) + data


def _linear_combination(scalars: list[bytes], elements: list[bytes]) -> bytes:
    total = _IDENTITY
    for scalar, element in zip(scalars, elements, strict=True):
        total = _add(total, _mult_or_identity(scalar, element))
    return total


def _mult_or_identity(scalar: bytes, element: bytes | None) -> bytes:
    """scalar * element (element None: the generator), with the identity allowed as a result,
    which libsodium reports as an error."""
    try:
        if element is None:
            return pysodium.crypto_scalarmult_ristretto255_base(scalar)
        return pysodium.crypto_scalarmult_ristretto255(scalar, element)
    except ValueError:
        return _IDENTITY


def _add(a: bytes, b: bytes) -> bytes:
    if a == _IDENTITY:
        return b
    if b == _IDENTITY:
        return a
    return pysodium.crypto_core_ristretto255_add(a, b)


# --------------------------------------------------------------------------------------------
# Threshold evaluation: skS split t-of-n with Shamir's scheme over the scalar field
# --------------------------------------------------------------------------------------------


def split_key(sk: bytes, threshold: int, count: int) -> list[tuple[int, bytes]]:
    """Shares (i, k_i = f(i)) for i = 1..count of a random polynomial f of degree
    threshold - 1 with f(0) = sk. Any ``threshold`` shares rebuild sk; fewer say nothing."""
    if not 1 <= threshold <= count <= 255:
        raise OprfError("need 1 <= threshold <= custodians <= 255")
    secret = int.from_bytes(_decode_scalar(sk), "little")
    coefficients = [secret] + [1 + secrets.randbelow(GROUP_ORDER - 1) for _ in range(threshold - 1)]
    shares = []
    for index in range(1, count + 1):
        value = sum(a * pow(index, power, GROUP_ORDER) for power, a in enumerate(coefficients))
        shares.append((index, _scalar_bytes(value % GROUP_ORDER)))
    return shares


def public_share(share: bytes) -> bytes:
    """pk_i = k_i * G, published so that members can check each custodian's proof."""
    return pysodium.crypto_scalarmult_ristretto255_base(_decode_scalar(share))


def lagrange_coefficient(index: int, indices: list[int]) -> bytes:
    """lambda_i at 0 for the set of share indices: prod_{j != i} j / (j - i) mod q."""
    numerator, denominator = 1, 1
    for other in indices:
        if other != index:
            numerator = numerator * other % GROUP_ORDER
            denominator = denominator * (other - index) % GROUP_ORDER
    return _scalar_bytes(numerator * pow(denominator, -1, GROUP_ORDER) % GROUP_ORDER)


def combine_evaluations(answers: dict[int, list[bytes]]) -> list[bytes]:
    """Combine the (verified) answers of t custodians, by share index, into the answers of the
    whole key: Z = sum of lambda_i * Z_i, element by element."""
    indices = sorted(answers)
    if len({len(elements) for elements in answers.values()}) != 1:
        raise OprfError("custodians answered different numbers of elements")
    weights = {i: lagrange_coefficient(i, indices) for i in indices}
    columns = zip(*(answers[i] for i in indices), strict=True)
    return [_linear_combination([weights[i] for i in indices], list(column)) for column in columns]


def _scalar_bytes(value: int) -> bytes:
    return value.to_bytes(SCALAR_BYTES, "little")


# --------------------------------------------------------------------------------------------
# Registry conventions (identifiers.md section 2)
# --------------------------------------------------------------------------------------------


def oprf_input(kind: str, canonical: str) -> bytes:
    """OPRF input of an identifier: kind || 0x00 || canonical, UTF-8. Keeps kinds apart."""
    return kind.encode("utf-8") + b"\x00" + canonical.encode("utf-8")


def token_hex(output: bytes) -> str:
    """The token as sent to the registry: 128 lower-case hex characters."""
    if len(output) != OUTPUT_BYTES:
        raise OprfError("OPRF output must be 64 bytes")
    return output.hex()

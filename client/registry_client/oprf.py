"""RFC 9497 OPRF, mode OPRF (0x00), suite ristretto255-SHA512, over libsodium.

The member blinds its input, the registry evaluates the blinded element with its private key,
and the member unblinds and hashes the answer into a 64-byte output (the *token*). The registry
never sees the input and the member never sees the key.

This module is shared by the member-side client and the registry server, so it is pure: no I/O,
no global state, only bytes in and bytes out. Group arithmetic comes from libsodium (>= 1.0.18)
through ``pysodium``; everything else (expand_message_xmd, the DSTs, the transcript hashes) is
written out here, following RFC 9497 section 3 and RFC 9380 section 5.3.1.
"""

from __future__ import annotations

import hashlib
import hmac

import pysodium

__all__ = [
    "CONTEXT_STRING",
    "ELEMENT_BYTES",
    "OUTPUT_BYTES",
    "SCALAR_BYTES",
    "DeriveKeyPairError",
    "InvalidElement",
    "InvalidInput",
    "InvalidScalar",
    "OprfError",
    "blind",
    "blind_evaluate",
    "blind_evaluate_many",
    "decode_element",
    "derive_key_pair",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "hash_to_group",
    "hash_to_scalar",
    "key_id",
    "oprf_input",
    "parse_element_hex",
    "token_hex",
]

MODE_OPRF = 0x00
# contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier  (RFC 9497 section 3.1)
CONTEXT_STRING = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-ristretto255-SHA512"

_HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
_HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
# The one DST without a hyphen (RFC 9497 section 3.2.1); easy to get wrong.
_DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING

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


def hash_to_group(msg: bytes, dst: bytes = _HASH_TO_GROUP_DST) -> bytes:
    """ristretto255 HashToGroup: the one-way map applied to 64 bytes of expand_message_xmd."""
    return pysodium.crypto_core_ristretto255_from_hash(expand_message_xmd(msg, dst, _UNIFORM_BYTES))


def hash_to_scalar(msg: bytes, dst: bytes = _HASH_TO_SCALAR_DST) -> bytes:
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


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9497 DeriveKeyPair: deterministic (skS, pkS) from a 32-byte seed and key info."""
    if len(seed) != 32:
        raise OprfError("seed must be 32 bytes")
    if len(info) > 0xFFFF:
        raise OprfError("info too long")
    derive_input = seed + _i2osp(len(info), 2) + info
    for counter in range(256):
        sk = hash_to_scalar(derive_input + _i2osp(counter, 1), _DERIVE_KEY_PAIR_DST)
        if any(sk):
            return sk, pysodium.crypto_scalarmult_ristretto255_base(sk)
    raise DeriveKeyPairError("DeriveKeyPair: no valid scalar")


def key_id(public_key: bytes) -> str:
    """Short public identifier of a key: first 16 hex characters of SHA-256(pkS)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Protocol (RFC 9497 section 3.3.1)
# --------------------------------------------------------------------------------------------


def blind(private_input: bytes, blind: bytes | None = None) -> tuple[bytes, bytes]:
    """Client step 1: return (blind scalar, serialized blinded element).

    ``blind`` is for test vectors only; in use it is left out and drawn from libsodium's CSPRNG.
    """
    if blind is None:
        # libsodium returns a uniformly random, canonical, non-zero scalar.
        blind = pysodium.crypto_core_ristretto255_scalar_random()
    blind = _decode_scalar(blind)
    input_element = hash_to_group(private_input)
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


def evaluate(sk: bytes, private_input: bytes) -> bytes:
    """Unblinded evaluation with the key itself; equals blind -> blind_evaluate -> finalize."""
    sk = _decode_scalar(sk)
    input_element = hash_to_group(private_input)
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

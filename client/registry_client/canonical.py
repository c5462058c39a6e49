"""Canonical forms of personal identifiers (spec/identifiers.md section 1).

Two inputs that denote the same identifier must give the same canonical string, in every
member's software, or the same person gets two tokens and matches are lost. A value that is not
a valid identifier of its kind is refused here, on the member's side, with the spec's error
code; it is never sent anywhere.

Shared by the client and the server; pure functions only. Error messages never contain the
value that was refused.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import idna
import phonenumbers
from stdnum import imei as stdnum_imei
from stdnum import luhn
from stdnum.exceptions import ValidationError as StdnumValidationError

__all__ = [
    "ERROR_CODES",
    "KINDS",
    "CanonicalizationError",
    "canonicalize",
    "resident_id_check_digit",
]

KINDS: tuple[str, ...] = ("phone", "cn_resident_id", "bank_card", "imei", "email")

ERROR_CODES: dict[str, str] = {kind: f"invalid_{kind}" for kind in KINDS}
UNKNOWN_KIND = "unknown_kind"

# Resident IDs are dates of birth in China; "not in the future" is judged on China time so that
# a member's server clock zone does not change the answer around midnight.
_CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

_RESIDENT_ID_18 = re.compile(r"[0-9]{17}[0-9X]")
_RESIDENT_ID_15 = re.compile(r"[0-9]{15}")
_CARD_DIGITS = re.compile(r"[0-9]{12,19}")
# GB 11643-1999: weights are 2^(17-i) mod 11, check character indexed by the sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
# Removed from bank card and IMEI input; "spaces and '-'" per the spec, plus look-alike dashes
# and other Unicode white space so that pasted values behave like typed ones.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\uff0d]+")
_PHONE_MAX_INPUT = 250  # libphonenumber refuses longer input anyway


class CanonicalizationError(ValueError):
    """A value refused for its kind. ``code`` is the spec's error code; the value is not kept."""

    def __init__(self, code: str, kind: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.kind = kind
        self.index: int | None = None  # position in a batch, set by Client.tokens


def canonicalize(kind: str, value: str) -> str:
    """Return the canonical form of ``value`` as an identifier of ``kind``."""
    try:
        canonicalizer = _CANONICALIZERS[kind]
    except (KeyError, TypeError):
        raise CanonicalizationError(UNKNOWN_KIND) from None
    if not isinstance(value, str):
        raise CanonicalizationError(ERROR_CODES[kind], kind)
    result = canonicalizer(value)
    if result is None:
        raise CanonicalizationError(ERROR_CODES[kind], kind)
    return result


# --------------------------------------------------------------------------------------------
# One function per kind; each returns the canonical string or None when the value is refused.
# --------------------------------------------------------------------------------------------


def _canonical_phone(value: str) -> str | None:
    if not value.strip() or len(value) > _PHONE_MAX_INPUT:
        return None
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _canonical_resident_id(value: str) -> str | None:
    # NFKC turns full-width digits and "Ｘ" (common with Chinese input methods) into ASCII.
    compact = "".join(unicodedata.normalize("NFKC", value).split()).upper()
    if _RESIDENT_ID_15.fullmatch(compact):
        # Legacy 15-digit number: the century "19" is implied; the check digit is new.
        body = compact[:6] + "19" + compact[6:]
        compact = body + resident_id_check_digit(body)
    elif not _RESIDENT_ID_18.fullmatch(compact):
        return None
    if compact[17] != resident_id_check_digit(compact[:17]):
        return None
    if not _is_plausible_birth_date(compact[6:14]):
        return None
    return compact


def resident_id_check_digit(first17: str) -> str:
    """GB 11643-1999 (ISO 7064 MOD 11-2) check character of the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def _is_plausible_birth_date(yyyymmdd: str) -> bool:
    try:
        born = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return born.year >= 1900 and born <= dt.datetime.now(_CHINA_TZ).date()


def _canonical_bank_card(value: str) -> str | None:
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    if not _CARD_DIGITS.fullmatch(digits) or not luhn.is_valid(digits):
        return None
    return digits


def _canonical_imei(value: str) -> str | None:
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    try:
        # 14 digits (no check digit), 15 (Luhn-checked) or 16 (IMEISV); ASCII digits only.
        valid = stdnum_imei.validate(compact)
    except StdnumValidationError:
        return None
    # The canonical IMEI is TAC + serial (14 digits) + Luhn check digit; an IMEISV's software
    # version is dropped because it changes with updates of the same device.
    body = valid[:14]
    return body + luhn.calc_check_digit(body)


def _canonical_email(value: str) -> str | None:
    text = unicodedata.normalize("NFC", value.strip())
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if domain.endswith("."):
        domain = domain[:-1]
    if not local or not domain or "" in domain.split("."):
        return None
    try:
        # IDNA 2008 with UTS #46 non-transitional mapping (contract v2): "ß" and "ς" are kept,
        # so "faß.de" and "fass.de" are different domains, as registrars treat them. The
        # mapping also folds case and full-width forms; invalid or over-long labels are refused.
        ascii_domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    return f"{local}@{ascii_domain}".lower()


_CANONICALIZERS = {
    "phone": _canonical_phone,
    "cn_resident_id": _canonical_resident_id,
    "bank_card": _canonical_bank_card,
    "imei": _canonical_imei,
    "email": _canonical_email,
}

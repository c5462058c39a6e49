"""Screen text for raw personal identifiers (spec/identifiers.md section 4).

The registry must never receive a raw identifier. Token fields and free-text fields (case
references, consent references, dispute statements, officers' rationales) are screened with
:func:`looks_like_raw_identifier`; a hit is refused with ``raw_pii_rejected`` and neither stored
nor logged. The client runs the same screen before sending, so that a member's mistake (a phone
number pasted into a reference) never leaves the member.

The screen runs on every free-text field of every request, so it is built from a few
precompiled regular expressions and cheap arithmetic checks. It deliberately errs on the side of
flagging: a false positive costs a member a rewritten reference, a false negative leaks a
person's identifier.

How the text is read first (so that the way a number is written does not hide it):

- NFKC: full-width digits, "＠", "＋" and "．" become ASCII; other decimal digits (Arabic-Indic,
  Devanagari ...) become ASCII digits; "。" and its look-alikes count as a dot in e-mail
  addresses.
- Format and combining characters (zero-width space and joiners, soft hyphen, BOM, word joiner,
  combining marks) are removed: ``138\\u200b1234\\u200b5678`` is ``13812345678``.
- Every space, dash, punctuation mark, control character and symbol except ``+`` is a
  separator: ``138/1234/5678``, ``138_1234_5678``, ``138—1234—5678`` and ``138：1234：5678``
  are all ``138 1234 5678``.

What it then looks for:

- Chinese mobile numbers ``1[3-9]x xxxx xxxx``, optionally after ``+86``/``0086``/``86``, with
  any separators between digit groups; Chinese landlines ``0xx xxxx xxxx`` (area code and
  number separated); and any ``+`` followed by 8 to 15 digits (E.164-looking).
- Resident ID numbers: 17 digits + ``X`` (also with letters after it); 18 digits with a
  plausible birth date at positions 7-14; 15 digits with a plausible ``YYMMDD`` birth date at
  positions 7-12.
- Bank cards (12 to 19 digits) and IMEIs (15 digits) that pass the Luhn check, written as one
  run of digits or in the usual groups (``6222 0200 ...``, ``35-209900-176148-1``).
- In a run of more than 19 digits (no identifier is that long: numbers glued together), a
  mobile number or an 18-digit resident ID at its start or end.
- E-mail addresses: ``local@domain.tld`` with a top-level label starting with a letter.

What it leaves alone: hexadecimal strings (tokens, elements, digests) of 32 characters or more
that contain a letter, and UUIDs: they are masked before digits are looked at. A run of 32 or
more digits with no letter is not masked: it is read as digits. A digit stretch glued to a
token-sized hex string (``13812345678`` + a 128-character token) is kept out of the mask.
Dates such as ``2026-10-01`` and references such as ``CASE-2026-0042`` are not identifiers.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["clean", "looks_like_raw_identifier", "separated"]

_SEP = " "
# Look-alikes of "." that NFKC keeps (ideographic full stops): for e-mail addresses.
_DOTS = {"\u3002": ".", "\ufe12": ".", "\uff61": "."}


@lru_cache(maxsize=4096)
def _cleaned(char: str) -> str:
    """A non-ASCII character after NFKC: dropped (format and combining characters), an ASCII
    digit (any decimal digit), "." (ideographic full stops), or itself."""
    if char in _DOTS:
        return _DOTS[char]
    category = unicodedata.category(char)
    if category in ("Cf", "Mn", "Me"):
        return ""  # zero-width space and joiners, soft hyphen, BOM, combining marks
    if category == "Nd":
        return str(unicodedata.decimal(char))
    return char


@lru_cache(maxsize=4096)
def _separated(char: str) -> str:
    """Every space, dash, punctuation mark, control character and symbol is a separator for
    digit runs, except "+" (E.164)."""
    if char == "+":
        return char
    category = unicodedata.category(char)
    return _SEP if category[0] in "ZPS" or category in ("Cc", "Cs") else char


_ASCII_SEPARATORS = {
    code: _SEP for code in range(128) if _separated(chr(code)) == _SEP and chr(code) != _SEP
}
_SPACES = re.compile(r" {2,}")


def clean(text: str) -> str:
    """NFKC, format and combining characters removed, every decimal digit ASCII, ideographic
    full stops as ".": how the e-mail pattern reads the text."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return "".join([char if char < "\x80" else _cleaned(char) for char in text])


def separated(cleaned: str) -> str:
    """A cleaned text with every separator (run) as one space: how digit runs are read."""
    if cleaned.isascii():
        text = cleaned.translate(_ASCII_SEPARATORS)
    else:
        text = "".join([_separated(char) for char in cleaned])
    return _SPACES.sub(_SEP, text) if "  " in text else text


_HEX = "[0-9A-Fa-f]"
# Tokens (128 hex), elements (64 hex), digests and UUIDs are not identifiers, but their digit
# runs could look like one, so they are masked before the digit screens run.
_HEX_BLOB = re.compile(
    rf"(?<![0-9A-Za-z])(?:{_HEX}{{32,}}|{_HEX}{{8}}(?: {_HEX}{{4}}){{3}} {_HEX}{{12}})"
    r"(?![0-9A-Za-z])"
)
_HAS_LETTER = re.compile("[A-Fa-f]")
_DIGEST_LENGTHS = (32, 40, 56, 64, 96, 128)  # uuid.hex/MD5, SHA-1, SHA-2 family, our tokens
_MASK = "#"  # neither a digit nor a separator once the text is separated: it splits digit runs

# A run of digit groups joined by separators; the last group may end in X (resident ID check
# character), whatever follows. Digit boundaries only: "手机13812345678已确认" must still be
# found, so letters and CJK characters next to the digits do not protect them.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?: [0-9]+)*(?: ?[Xx])?")

# "+" then 8 to 15 digits: E.164 as people write it ("+1 650-253-0000", "(+86) 138 1234 5678").
_E164 = re.compile(r"\+ ?[1-9](?: ?[0-9]){7,14}(?![0-9])")
# Chinese landline: area code, separator, number ("(010) 6552 9988", "010-65529988").
_CN_LANDLINE = re.compile(r"(?<![0-9])0[1-9][0-9]{1,2} [0-9]{3,4} ?[0-9]{4}(?![0-9])")
# Bounded repetitions keep the search linear on long statements.
_EMAIL_CHAR = r"[^\s@<>()\[\]{},;:\"'`|/\\]"
_DOMAIN_CHAR = r"[^\s@<>()\[\]{},;:\"'`|/\\.]"
_EMAIL = re.compile(
    rf"{_EMAIL_CHAR}{{1,64}}@{_DOMAIN_CHAR}{{1,63}}(?:\.{_DOMAIN_CHAR}{{1,63}}){{0,8}}"
    r"\.(?:[A-Za-z]|[^\x00-\x7f])"
)
_ANY_DIGIT = re.compile(r"[0-9]")

_MOBILE = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}")
_MAX_IDENTIFIER_DIGITS = 19  # longest identifier (bank card); longer joins are not tried
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap-tolerant: a screen


def looks_like_raw_identifier(text: str) -> bool:
    """True when ``text`` contains something that looks like a raw personal identifier."""
    if not text:
        return False
    text = clean(text)
    if "@" in text and _EMAIL.search(text):
        return True
    if not _ANY_DIGIT.search(text):
        return False
    text = _HEX_BLOB.sub(_mask_hex, separated(text))
    if _E164.search(text) or _CN_LANDLINE.search(text):
        return True
    return any(_run_has_identifier(match.group()) for match in _DIGIT_RUN.finditer(text))


def _mask_hex(match: re.Match) -> str:
    """Mask a hex string that contains a letter. Digits only: not a digest, read as digits.

    A token-sized hex string with a digit stretch glued to one end (a phone number typed
    against a token) keeps that stretch outside the mask; random tokens, whose length is
    exactly a digest length, are masked whole, whatever digits they begin or end with."""
    blob = match.group()
    if not _HAS_LETTER.search(blob):
        return blob
    for size in reversed(_DIGEST_LENGTHS):  # the longest digest first: the shortest stretch
        extra = len(blob) - size
        if extra < 11:  # the shortest identifier (a mobile number) has 11 digits
            continue
        head, tail = blob[:extra], blob[-extra:]
        if head.isdigit() or tail.isdigit():
            return (head if head.isdigit() else "") + _MASK + (tail if tail.isdigit() else "")
    return _MASK


def _run_has_identifier(run: str) -> bool:
    """Try every stretch of consecutive groups of one digit run, up to 19 digits long.

    Trying stretches rather than the whole run finds "13812345678" in "2026-10-01 13812345678"
    while "CASE-2026-0042" (8 digits in all) stays clean.
    """
    groups = run.split(_SEP)
    if any(len(group) > _MAX_IDENTIFIER_DIGITS and _glued_ends(group) for group in groups):
        return True
    if len(groups) == 1:
        return _is_identifier(groups)
    for start in range(len(groups)):
        length = 0
        for end in range(start, len(groups)):
            length += len(groups[end])
            if length > _MAX_IDENTIFIER_DIGITS:
                break
            if _is_identifier(groups[start : end + 1]):
                return True
    return False


def _glued_ends(digits: str) -> bool:
    """A run longer than any identifier: a mobile number or resident ID at either end."""
    digits = digits.rstrip("Xx")
    if any(
        _MOBILE.fullmatch(end) for size in (11, 13, 15) for end in (digits[:size], digits[-size:])
    ):
        return True
    return any(_plausible_date(end[6:14]) for end in (digits[:18], digits[-18:]))


def _is_identifier(groups: list[str]) -> bool:
    joined = "".join(groups)
    if joined[-1] in "Xx":
        if len(joined) == 18:
            return True  # 17 digits + X: a resident ID, valid or forged
        joined = joined[:-1]  # the X was a letter after the number; screen the digits
        groups = [*groups[:-1], groups[-1][:-1]]
    size = len(joined)
    if size < 11:
        return False
    if _MOBILE.fullmatch(joined):
        return True
    # Every resident ID that could be tokenised carries a real birth date; testing the date
    # rather than the check digit also catches forged numbers with a wrong check digit.
    if size == 18 and _plausible_date(joined[6:14]):
        return True
    if size == 15 and _plausible_date("19" + joined[6:12]):
        return True
    return 12 <= size <= 19 and _card_like_grouping(groups) and _luhn_ok(joined)


def _card_like_grouping(groups: list[str]) -> bool:
    """Luhn alone passes one number in ten, so grouped digits count only in card/IMEI layouts.

    One unbroken run always counts (that is how systems export card numbers).
    """
    groups = [group for group in groups if group]
    if len(groups) == 1:
        return True
    sizes = tuple(len(group) for group in groups)
    if sizes in ((2, 6, 6, 1), (8, 6, 1)):  # IMEI as printed on devices and boxes
        return True
    return sizes[0] >= 4 and all(3 <= size <= 6 for size in sizes[:-1]) and sizes[-1] >= 1


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _plausible_date(yyyymmdd: str) -> bool:
    if len(yyyymmdd) != 8:
        return False
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]

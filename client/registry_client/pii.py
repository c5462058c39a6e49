"""Screen text for raw personal identifiers (spec/identifiers.md section 4).

The registry must never receive a raw identifier. Token fields and free-text fields (case
references, consent references, dispute statements) are screened with
:func:`looks_like_raw_identifier`; a hit is refused with ``raw_pii_rejected`` and neither stored
nor logged. The client runs the same screen before sending, so that a member's mistake (a phone
number pasted into a reference) never leaves the member.

The screen runs on every field of every request, so it is built from a few precompiled regular
expressions and cheap arithmetic checks. It deliberately errs on the side of flagging: a false
positive costs a member a rewritten reference, a false negative leaks a person's identifier.

What it looks for (``digits`` below are ASCII after NFKC, so full-width digits count too):

- Chinese mobile numbers ``1[3-9]x xxxx xxxx``, optionally after ``+86``/``0086``/``86``, with
  any spaces, dashes or dots between digit groups; Chinese landlines written ``(0xx) xxxx xxxx``
  or ``0xx-xxxxxxxx``; and any ``+`` followed by 8 to 15 digits (E.164-looking).
- Resident ID numbers: 17 digits + ``X``; 18 digits with a plausible birth date at positions
  7-14; 15 digits with a plausible ``YYMMDD`` birth date at positions 7-12.
- Bank cards (12 to 19 digits) and IMEIs (15 digits) that pass the Luhn check, written as one
  run of digits or in the usual groups (``6222 0200 ...``, ``35-209900-176148-1``).
- E-mail addresses: ``local@domain.tld`` with a top-level label starting with a letter.

What it leaves alone: hexadecimal strings of 32 characters or more (tokens, elements, digests),
UUIDs, dates such as ``2026-10-01`` and references such as ``CASE-2026-0042``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["looks_like_raw_identifier"]

# Tokens (128 hex), elements (64 hex), digests and UUIDs are not identifiers, but their digit
# runs could look like one, so they are masked before the digit screens run.
_HEX_BLOB = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{32,}"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
    r"(?![0-9A-Za-z])"
)
_MASK = "#"  # neither a digit nor a group separator: it splits digit runs

# A run of digit groups joined by single separators; the last group may end in X (resident
# ID check character). Digit boundaries only: "手机13812345678已确认" must still be found, so
# letters and CJK characters next to the digits do not protect them.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ .\-][0-9]+)*(?:[Xx](?![A-Za-z]))?")
_SEPARATOR = re.compile(r"[ .\-]")

# "+" then 8 to 15 digits with light punctuation: E.164 as people write it ("+1 650-253-0000",
# "(+86) 138 1234 5678").
_E164 = re.compile(r"\+[ (]{0,2}[1-9](?:[ .\-()]{0,2}[0-9]){7,14}(?![0-9])")
# Chinese landline with a parenthesised or dash-separated area code: "(010) 6552 9988".
_CN_LANDLINE = re.compile(
    r"(?<![0-9])(?:\(0[1-9][0-9]{1,2}\)[ \-]?|0[1-9][0-9]{1,2}[ \-])"
    r"[0-9]{3,4}[ \-]?[0-9]{4}(?![0-9])"
)
# Bounded repetitions keep the search linear on long statements.
_EMAIL = re.compile(
    r"[^\s@<>()\[\]{},;:\"'`|/\\]{1,64}@[^\s@<>()\[\]{},;:\"'`|/\\.]{1,63}"
    r"(?:\.[^\s@<>()\[\]{},;:\"'`|/\\.]{1,63}){0,8}\.(?:[A-Za-z]|[^\x00-\x7f])"
)
_ANY_DIGIT = re.compile(r"[0-9]")

_MOBILE = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}")
_MAX_IDENTIFIER_DIGITS = 19  # longest identifier (bank card); longer joins are not tried
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap-tolerant: a screen


def looks_like_raw_identifier(text: str) -> bool:
    """True when ``text`` contains something that looks like a raw personal identifier."""
    if not text:
        return False
    if not text.isascii():
        # Full-width digits, "＠" and "＋" are what Chinese input methods produce.
        text = unicodedata.normalize("NFKC", text)
    has_at = "@" in text
    if not has_at and not _ANY_DIGIT.search(text):
        return False
    if has_at and _EMAIL.search(text):
        return True
    text = _HEX_BLOB.sub(_MASK, text)
    if _E164.search(text) or _CN_LANDLINE.search(text):
        return True
    return any(_run_has_identifier(match.group()) for match in _DIGIT_RUN.finditer(text))


def _run_has_identifier(run: str) -> bool:
    """Try every stretch of consecutive groups of one digit run, up to 19 digits long.

    Trying stretches rather than the whole run finds "13812345678" in "2026-10-01 13812345678"
    while "CASE-2026-0042" (8 digits in all) stays clean.
    """
    groups = _SEPARATOR.split(run)
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
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]

"""The raw-identifier screen used on token and free-text fields."""

from __future__ import annotations

import itertools
import re
import secrets
import time
import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_client.pii import looks_like_raw_identifier

POSITIVES = {
    "mobile": "13812345678",
    "mobile grouped": "138 1234 5678",
    "mobile dashes": "138-1234-5678",
    "mobile +86": "+86 138-1234-5678",
    "mobile 0086": "008613812345678",
    "mobile 86": "8613812345678",
    "mobile in chinese text": "客户手机13812345678已确认",
    "mobile after a date": "2026-10-01 13812345678",
    "mobile after letters": "tel13812345678",
    "mobile full-width": "手机：１３８１２３４５６７８",
    "e164 foreign": "call +1 650-253-0000 today",
    "e164 parenthesised": "(+86) 138 1234 5678",
    "landline": "(010) 6552 9988",
    "landline dash": "电话010-65529988",
    "resident id": "11010519491231002X",
    "resident id lower x": "身份证11010519491231002x号",
    "resident id grouped": "110105 19491231 002X",
    "resident id digits": "440524195001010014",
    "resident id bad check digit": "110105194912310021",
    "resident id legacy 15": "110105491231002",
    "bank card": "4111111111111111",
    "bank card dashes": "4111-1111-1111-1111",
    "bank card 19 grouped": "卡号 6212 2611 0200 0000 003",
    "imei": "352099001761481",
    "imei grouped": "IMEI 35-209900-176148-1",
    "email": "Li.Wei@Example.COM",
    "email in text": "联系邮箱wang@例子.中国已核实",
    "email full-width at": "li.wei＠example.com",
}

NEGATIVES = {
    "token": "a3" * 64,
    "element": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
    "uuid": "6f1f6c0e-2c4b-4d7e-9d3f-123456789012",
    "reference": "CASE-2026-0042",
    "date": "2026-10-01",
    "date slashes": "2026/10/01",
    "timestamp": "2026-10-01T12:30:45+08:00",
    "chinese date": "借款人于2026年10月1日逾期",
    "long reference": "LN-2026-000123-01",
    "amount": "金额 100000.00 元，期限 12 个月",
    "invoice": "INV-20261001-0042",
    "version": "v1.2.3",
    "ip address": "192.168.100.200",
    "empty": "",
    "words": "identity documents forged; applicant unreachable",
    "mention": "@risk-team please review",
    "short at": "case@2026",
    "not luhn": "4111111111111112",
    "short number": "1381234567",
}


@pytest.mark.parametrize("text", POSITIVES.values(), ids=POSITIVES.keys())
def test_it_flags_raw_identifiers(text):
    assert looks_like_raw_identifier(text) is True


@pytest.mark.parametrize("text", NEGATIVES.values(), ids=NEGATIVES.keys())
def test_it_leaves_tokens_references_and_dates_alone(text):
    assert looks_like_raw_identifier(text) is False


def test_it_never_flags_random_tokens_elements_or_uuids():
    samples = [secrets.token_hex(64) for _ in range(3000)]
    samples += [secrets.token_hex(32) for _ in range(3000)]
    samples += [str(uuid.uuid4()) for _ in range(3000)]
    assert [sample for sample in samples if looks_like_raw_identifier(sample)] == []


def test_it_finds_an_identifier_next_to_a_token():
    assert looks_like_raw_identifier(secrets.token_hex(64) + " 13812345678")


def test_it_is_fast_enough_for_every_field():
    fields = [secrets.token_hex(64)] * 2000 + [
        "客户于2026-10-01申请借款，合同号 CASE-2026-0042"
    ] * 2000
    started = time.perf_counter()
    for text in fields:
        looks_like_raw_identifier(text)
    assert time.perf_counter() - started < 1.0


def test_it_stays_linear_on_long_hostile_text():
    hostile = ("a" * 5000 + "@") * 4 + "1-" * 5000
    started = time.perf_counter()
    looks_like_raw_identifier(hostile)
    assert time.perf_counter() - started < 1.0


def _luhn_complete(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


@given(
    prefix=st.sampled_from(["13", "14", "15", "16", "17", "18", "19"]),
    rest=st.text("0123456789", min_size=9, max_size=9),
    before=st.sampled_from(["", "手机", "tel: ", "客户 ", "(", "CASE-1 "]),
    after=st.sampled_from(["", "已确认", " ok", ")", "。"]),
)
def test_it_flags_any_chinese_mobile_inside_text(prefix, rest, before, after):
    assert looks_like_raw_identifier(f"{before}{prefix}{rest}{after}")


@given(body=st.text("0123456789", min_size=15, max_size=15), sep=st.sampled_from(["", " ", "-"]))
def test_it_flags_any_luhn_valid_card_number(body, sep):
    number = _luhn_complete(body)
    grouped = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    assert looks_like_raw_identifier(f"卡号{grouped}")


@given(st.binary(min_size=64, max_size=64))
def test_it_never_flags_a_token(raw):
    assert not looks_like_raw_identifier(raw.hex())


# --- Every way of writing an identifier (issue 13, part 4) ----------------------------------
# Variants of every kind: random separators between digit groups (spaces, dashes of every
# width, slashes, underscores, commas, colons, tabs, full-width punctuation), zero-width and
# soft-hyphen characters anywhere, full-width or other decimal digits, words around.

SEPARATORS = [
    " ", "-", "/", "_", ",", ":", ".", "\t", "\n", "–", "—", "‐", "−", "\u3000", "\u00a0",
    "－", "：", "，", "、", "．", "・", "·", "~", "|", "*", "#", " - ", ", ", "\u2009",
]  # fmt: skip
FORMAT_CHARS = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u180e"]
DIGIT_FORMS = {
    "ascii": "0123456789",
    "full-width": "０１２３４５６７８９",
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
    "mathematical": "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",
}
WORDS_BEFORE = ["", "手机", "客户电话：", "tel ", "身份证号", "卡号 ", "联系人 张三 ", "("]
WORDS_AFTER = ["", "已确认", " ok", ")", "。", "，请核实", " (verified)"]


def digits(size: int):
    return st.text("0123456789", min_size=size, max_size=size)


def mobiles():
    return st.builds(
        lambda prefix, second, rest: prefix + "1" + second + rest,
        st.sampled_from(["", "86", "+86", "0086"]),
        st.sampled_from("3456789"),
        digits(9),
    )


def resident_ids():
    def build(area, birth, serial, check):
        return area + birth.strftime("%Y%m%d") + serial + check

    return st.builds(
        build,
        digits(6),
        st.dates(min_value=date(1920, 1, 1), max_value=date(2026, 12, 31)),
        digits(3),
        st.sampled_from("0123456789Xx"),
    )


def cards():
    return st.builds(
        _luhn_complete,
        st.sampled_from(["4", "5", "62"]).flatmap(
            lambda head: digits(15 - len(head)).map(lambda rest: head + rest)
        ),
    )


def imeis():
    return digits(14).map(_luhn_complete)


@st.composite
def split_anywhere(draw, number: str) -> list[str]:
    """Digit groups of any sizes (a mobile or resident ID counts however it is cut)."""
    cuts = sorted(draw(st.sets(st.integers(1, len(number) - 1), max_size=6)))
    bounds = [0, *cuts, len(number)]
    return [number[a:b] for a, b in itertools.pairwise(bounds)]


def card_groups(number: str) -> list[list[str]]:
    """The layouts cards and IMEIs are printed in."""
    fours = [number[i : i + 4] for i in range(0, len(number), 4)]
    layouts = [[number], fours]
    if len(number) == 15:
        layouts += [[number[:2], number[2:8], number[8:14], number[14:]]]
        layouts += [[number[:8], number[8:14], number[14:]]]
    return layouts


@st.composite
def disguised(draw, groups: list[str]) -> str:
    """Groups joined by random separators, digits in a random form, format characters
    sprinkled anywhere, words around."""
    form = DIGIT_FORMS[draw(st.sampled_from(sorted(DIGIT_FORMS)))]
    text = ""
    for index, group in enumerate(groups):
        if index:
            text += draw(st.sampled_from(SEPARATORS))
        text += group.translate(str.maketrans("0123456789", form))
    chars = list(text)
    for _ in range(draw(st.integers(0, 4))):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(FORMAT_CHARS)))
    return draw(st.sampled_from(WORDS_BEFORE)) + "".join(chars) + draw(st.sampled_from(WORDS_AFTER))


@given(st.data())
def test_it_flags_a_mobile_number_however_it_is_written(data):
    number = data.draw(mobiles())
    plus = "+" if number.startswith("+") else ""
    groups = data.draw(split_anywhere(number.lstrip("+")))
    text = data.draw(disguised(groups))
    text = text.replace(groups[0], plus + groups[0], 1) if plus else text
    assert looks_like_raw_identifier(text), text


@given(st.data())
def test_it_flags_a_resident_id_however_it_is_written(data):
    number = data.draw(resident_ids())
    groups = data.draw(split_anywhere(number))
    assert looks_like_raw_identifier(data.draw(disguised(groups)))


@given(st.data(), st.sampled_from(["", "abc", "ABC", "号", "Xyz", "x1"]))
def test_it_flags_a_resident_id_with_letters_appended(data, letters):
    assert looks_like_raw_identifier(data.draw(resident_ids()) + letters)


@given(st.data())
def test_it_flags_a_card_or_imei_however_it_is_separated(data):
    number = data.draw(st.one_of(cards(), imeis()))
    groups = data.draw(st.sampled_from(card_groups(number)))
    assert looks_like_raw_identifier(data.draw(disguised(groups)))


@given(
    local=st.from_regex(r"[a-z][a-z0-9._-]{0,10}[a-z0-9]", fullmatch=True),
    domain=st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
    tld=st.sampled_from(["com", "cn", "com.cn", "net", "中国", "org"]),
    at=st.sampled_from(["@", "＠", "﹫"]),
    dot=st.sampled_from([".", "。", "．", "｡", "﹒"]),
    full_width=st.booleans(),
    data=st.data(),
)
def test_it_flags_an_email_address_however_it_is_written(
    local, domain, tld, at, dot, full_width, data
):
    text = local + at + domain + dot + tld.replace(".", dot)
    if full_width:  # what a Chinese input method in full-width mode types
        text = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    chars = list(text)
    for _ in range(data.draw(st.integers(0, 3))):
        chars.insert(
            data.draw(st.integers(0, len(chars))), data.draw(st.sampled_from(FORMAT_CHARS))
        )
    assert looks_like_raw_identifier(
        data.draw(st.sampled_from(WORDS_BEFORE))
        + "".join(chars)
        + data.draw(st.sampled_from(WORDS_AFTER))
    )


@pytest.mark.parametrize(
    "text",
    [
        "138/1234/5678",
        "138_1234_5678",
        "138,1234,5678",
        "138:1234:5678",
        "138\t1234\t5678",
        "138–1234–5678",
        "138—1234—5678",
        "138\u200b1234\u200b5678",
        "1381\u00ad2345678",
        "alice@example。com",
        "11010519491231002Xab",
        "13812345678" + "0" * 25,
        "0" * 25 + "11010519491231002X",
    ],
)
def test_it_flags_what_slipped_past_the_old_screen(text):
    assert looks_like_raw_identifier(text)


# Digits glued to hex. A hex string with a letter is a token, element or digest and is
# masked; one without a letter is read as digits. A phone typed against a token-sized hex
# string (its length is a digest length plus the phone's) is found; glued to hex of any other
# length it is masked with it (the price of never flagging a random token).


@given(
    token=st.sampled_from([32, 40, 64, 128]).flatmap(
        lambda n: st.binary(min_size=n // 2, max_size=n // 2)
    ),
    number=mobiles().map(lambda m: m.lstrip("+")),
    before=st.booleans(),
)
def test_it_finds_a_number_glued_to_a_token(token, number, before):
    hexed = token.hex()
    assert looks_like_raw_identifier(number + hexed if before else hexed + number)


def test_it_reads_a_long_run_without_letters_as_digits():
    assert looks_like_raw_identifier("13812345678" + "0" * 21)  # 32 "hex" characters, no letter
    assert not looks_like_raw_identifier("2" * 40)


def test_it_masks_hex_with_letters_of_other_lengths_whole():
    assert not looks_like_raw_identifier("13812345678" + "ab" * 12)


@given(
    # a random digest without a letter (one in three million) is read as digits
    st.binary(min_size=16, max_size=64).filter(lambda raw: re.search("[a-f]", raw[:16].hex())),
    st.sampled_from(SEPARATORS),
)
def test_it_never_flags_a_digest_or_uuid_among_words(raw, sep):
    text = f"digest{sep}{raw.hex()}{sep}uuid{sep}{uuid.UUID(bytes=raw[:16])}"
    assert not looks_like_raw_identifier(text)


# --- What it must not refuse -----------------------------------------------------------------


@st.composite
def ordinary_dates(draw) -> str:
    day = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)))
    layout = draw(st.sampled_from(["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%d.%m.%Y", "%Y%m%d"]))
    return day.strftime(layout)


@st.composite
def amounts(draw) -> str:
    value = draw(st.integers(0, 99_999_999_99))
    yuan, fen = divmod(value, 100)
    return draw(st.sampled_from([f"{yuan:,}.{fen:02d}", f"{yuan}.{fen:02d}", f"{yuan:,}"]))


@st.composite
def case_references(draw) -> str:
    prefix = draw(st.sampled_from(["FR", "CASE", "LN", "INV", "贷款申请"]))
    year = draw(st.integers(2020, 2035))
    serial = draw(st.integers(1, 99999))
    return draw(st.sampled_from([f"{prefix}-{year}-{serial:04d}", f"{prefix}{year}{serial:05d}"]))


PROSE = [
    "借款人于{date}逾期，金额{amount}元，编号{ref}。",
    "Case {ref} opened on {date}; amount {amount} CNY, applicant unreachable.",
    "申请人提交的材料经核实系伪造（{ref}），涉及金额{amount}元，{date}报案。",
    "Loan {ref}: forged payslips, disbursed {date}, outstanding {amount}.",
]


@given(
    template=st.sampled_from(PROSE),
    day=ordinary_dates(),
    amount=amounts(),
    ref=case_references(),
)
def test_it_leaves_ordinary_prose_dates_amounts_and_references_alone(template, day, amount, ref):
    text = template.format(date=day, amount=amount, ref=ref)
    assert not looks_like_raw_identifier(text), text


@pytest.mark.parametrize(
    "text",
    [
        "FR-2026-0042",
        "申请人称其身份证已于2026年3月遗失，已报警。",
        "The applicant used a forged employment certificate; see attachment 3 of 4.",
        "金额：12,345.67元；期限：12个月；利率：3.85%",
        "Meeting at 10:30 – 11:45, room 12, floor 3.",
        "会议时间 2026-10-01 14:00—15:30",
        "v1.2.3 — build 4567",
        "第１２３４号文件",
    ],
)
def test_it_leaves_ordinary_text_alone(text):
    assert not looks_like_raw_identifier(text)

"""The raw-identifier screen used on token and free-text fields."""

from __future__ import annotations

import secrets
import time
import uuid

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

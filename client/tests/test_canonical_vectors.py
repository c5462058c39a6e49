"""Canonical forms: every case of spec/vectors/canonical.json, plus the edges around them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from registry_client.canonical import KINDS, CanonicalizationError, canonicalize

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"
CASES = json.loads((VECTORS / "canonical.json").read_text(encoding="utf-8"))


def _case_id(case: dict) -> str:
    return f"{case['kind']}:{case['input']!r}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_it_passes_every_canonical_vector(case):
    if "canonical" in case:
        assert canonicalize(case["kind"], case["input"]) == case["canonical"]
    else:
        with pytest.raises(CanonicalizationError) as refused:
            canonicalize(case["kind"], case["input"])
        assert refused.value.code == case["error"]


def test_it_covers_every_kind_in_the_vectors():
    assert {case["kind"] for case in CASES} == set(KINDS)


def test_it_refuses_unknown_kinds():
    with pytest.raises(CanonicalizationError) as refused:
        canonicalize("passport", "E12345678")
    assert refused.value.code == "unknown_kind"


@pytest.mark.parametrize("kind", KINDS)
def test_it_refuses_non_strings_and_blank_values(kind):
    for value in (None, 13812345678, "", "   "):
        with pytest.raises(CanonicalizationError) as refused:
            canonicalize(kind, value)
        assert refused.value.code == f"invalid_{kind}"


def test_it_keeps_the_value_out_of_the_error():
    with pytest.raises(CanonicalizationError) as refused:
        canonicalize("cn_resident_id", "110105194912310021")
    assert "110105194912310021" not in str(refused.value)
    assert "110105194912310021" not in repr(refused.value)


def test_it_refuses_a_birth_date_in_the_future():
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    body = "110105" + tomorrow.strftime("%Y%m%d") + "002"
    from registry_client.canonical import resident_id_check_digit

    with pytest.raises(CanonicalizationError):
        canonicalize("cn_resident_id", body + resident_id_check_digit(body))


def test_it_accepts_full_width_digits_from_chinese_input_methods():
    assert (
        canonicalize("cn_resident_id", "１１０１０５１９４９１２３１００２ｘ")
        == "11010519491231002X"
    )
    assert canonicalize("phone", "１３８１２３４５６７８") == "+8613812345678"
    assert canonicalize("bank_card", "４１１１ １１１１ １１１１ １１１１") == "4111111111111111"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("bank_card", "41111111111"),  # 11 digits
        ("bank_card", "4" * 20),  # 20 digits
        ("bank_card", "4111 1111 1111 111a"),
        ("imei", "35209900176148231"),  # 17 digits
        ("imei", "3520990017614"),  # 13 digits
        ("imei", "35209900176148a"),
        ("cn_resident_id", "11010519491231002Y"),
        ("cn_resident_id", "X1010519491231002"),
        ("cn_resident_id", "110105189912310011"),  # 1899
        ("email", "@example.com"),
        ("email", "li.wei@"),
        ("email", "li.wei@example..com"),
        ("email", "li.wei@" + "a" * 64 + ".com"),  # label over 63 octets
        ("phone", "+86 138 1234 567"),  # too short for a mobile
        ("phone", "1" * 300),
    ],
)
def test_it_refuses_malformed_values(kind, value):
    with pytest.raises(CanonicalizationError) as refused:
        canonicalize(kind, value)
    assert refused.value.code == f"invalid_{kind}"


def test_it_removes_one_trailing_dot_from_email_domains():
    assert canonicalize("email", "Li.Wei@Example.COM.") == "li.wei@example.com"


def test_it_does_not_apply_provider_rules_to_email():
    assert canonicalize("email", "li.wei+loans@gmail.com") == "li.wei+loans@gmail.com"


def test_it_is_idempotent_on_canonical_forms():
    for case in CASES:
        if "canonical" in case:
            assert canonicalize(case["kind"], case["canonical"]) == case["canonical"]

"""Bodies that are not the JSON the contract allows (spec/api.md, Conventions: input limits):
nested deeper than 32 levels, not UTF-8, lone surrogates. Each gets 400 `malformed_json` as
problem details, never a 500, nothing is written, and the answer repeats none of the body."""

import json

import pytest

from registry.models import AuditEvent, Case, Dispute, Lookup
from tests.support.api import assert_problem
from tests.support.factories import CASES, LOOKUPS, case_payload, submit_case

pytestmark = pytest.mark.django_db

EVALUATE = "/api/v1/oprf/evaluate"
BODY_ENDPOINTS = [CASES, LOOKUPS, EVALUATE, f"{CASES}/batch"]


def nested(depth: int) -> bytes:
    """`depth` levels of arrays and objects, alternating, around a number."""
    text = "1"
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"a":{text}}}'
    return text.encode()


def send(world, path: str, body: bytes, content_type: str = "application/json"):
    return world.alice.client.post(path, data=body, content_type=content_type)


def assert_malformed(response, cases: int = 0) -> dict:
    body = assert_problem(response, 400, "malformed_json")
    assert Case.objects.count() == cases and not Lookup.objects.exists()
    return body


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_it_refuses_json_nested_far_too_deep(world, path):
    # used to recurse in json.loads until RecursionError: 500
    assert_malformed(send(world, path, b"[" * 100_000 + b"]" * 100_000))


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_it_refuses_json_nested_deeper_than_32_levels(world, path):
    assert_malformed(send(world, path, nested(33)))
    deep_field = {"reference": json.loads("[" * 32 + "1" + "]" * 32)}  # 33 with the object
    assert_malformed(send(world, path, json.dumps(deep_field).encode()))


def test_it_parses_json_nested_32_levels(world):
    body = assert_problem(send(world, CASES, nested(32)), 400, "validation_error")
    assert body["code"] != "malformed_json"


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "raw",
    [
        b'{"reference": "\xff\xfe"}',
        b'{"reference": "caf\xc3"}',
        b'{"reference": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8: not UTF-8
        b"\xef\xbb\xbf" + json.dumps(case_payload()).encode(),  # BOM
    ],
    ids=["invalid-start", "truncated", "encoded-surrogate", "bom"],
)
def test_it_refuses_a_body_that_is_not_utf8(world, path, raw):
    body = assert_malformed(send(world, path, raw))
    assert "\\x" not in body["detail"] and "0x" not in body["detail"]


@pytest.mark.parametrize("charset", ["latin-1", "no-such-charset", "utf-16"])
def test_it_reads_json_as_utf8_whatever_charset_is_claimed(world, charset):
    # an unknown charset used to raise LookupError in the parser: 500
    payload = json.dumps(case_payload(reference="CAFÉ-1"), ensure_ascii=False).encode()
    response = send(world, CASES, payload, f"application/json; charset={charset}")
    assert response.status_code == 201, response.content
    assert Case.objects.get().reference == "CAFÉ-1"


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (CASES, '{"reference": "REF-\\ud800", "category": "identity_theft"}'),
        (CASES, '{"reference\\udfff": "REF-1"}'),
        (LOOKUPS, '{"purpose": "loan_application", "consent_reference": "\\udc00x"}'),
        (EVALUATE, '{"blinded_elements": ["\\uD83D"]}'),
        (CASES, '"\\ud800"'),
    ],
)
def test_it_refuses_lone_surrogates(world, path, payload):
    # "\ud800" decoded to a string the database driver could not encode: 500
    events = AuditEvent.objects.count()
    assert_malformed(send(world, path, payload.encode()))
    assert AuditEvent.objects.count() == events


def test_it_refuses_a_lone_surrogate_in_a_dispute_statement(world):
    case = submit_case(world.alice)
    payload = f'{{"case_id": "{case["id"]}", "reason": "not_me", "statement": "\\ud800"}}'
    assert_malformed(send(world, "/api/v1/disputes", payload.encode()), cases=1)
    assert not Dispute.objects.exists()


def test_it_accepts_a_surrogate_pair(world):
    payload = json.dumps(case_payload(reference="REF-😀"), ensure_ascii=True).encode()
    assert b"\\ud83d\\ude00" in payload
    assert send(world, CASES, payload).status_code == 201
    assert Case.objects.get().reference == "REF-😀"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_it_refuses_nan_and_infinity(world, constant):
    assert_malformed(send(world, EVALUATE, f'{{"blinded_elements": {constant}}}'.encode()))


def test_it_never_repeats_the_body_in_a_parse_error(world):
    body = assert_malformed(send(world, CASES, b'{"reference": "SECRET-MARKER-42" ,,}'))
    assert "SECRET-MARKER-42" not in json.dumps(body)
    assert "line 1" in body["detail"]

"""The raw-identifier guard (spec/identifiers.md section 4) on every token and free-text field
of cases and lookups: a value that looks like a raw phone, resident ID, card number, IMEI or
e-mail is refused with `raw_pii_rejected`, nothing is written, and the value appears in no
response, no log line and no audit event."""

import json
import logging

import pytest

from registry.logging import JsonFormatter
from registry.models import AuditEvent, Case, CaseIdentifier, IdempotencyKey, Lookup, Sighting
from tests.support.factories import (
    CASES,
    LOOKUPS,
    case_payload,
    fresh_phone,
    identifier,
    submit_case,
)

pytestmark = pytest.mark.django_db

RAW_VALUES = {
    "mobile": "13812345678",
    "mobile_e164_grouped": "+86 138-1234-5678",
    "resident_id": "11010519491231002X",
    "bank_card": "6222021234567890128",
    "imei": "490154203237518",
    "email": "zhang.san@example.com",
    "mobile_in_words": "客户手机13812345678已确认",
}


@pytest.fixture
def every_log_line(monkeypatch):
    """Every record any logger emits during the test, at every level, formatted as the
    registry formats them in production (JSON with extras)."""
    lines: list[str] = []
    formatter = JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(formatter.format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.DEBUG)
    for name in ("django.request", "django.server", "django.db.backends"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


def with_token(raw: str) -> list[dict]:
    return [identifier("phone", fresh_phone()), {"kind": "phone", "token": raw}]


def lookup_body(**overrides) -> dict:
    return {
        "purpose": "loan_application",
        "identifiers": [identifier("phone", fresh_phone())],
        **overrides,
    }


# (what, how to send it, the pointer the error must name)
REQUESTS = {
    "case_token": (
        lambda w, raw: w.alice.post(CASES, case_payload(identifiers=with_token(raw))),
        "/identifiers/1/token",
    ),
    "case_reference": (
        lambda w, raw: w.alice.post(CASES, case_payload(reference=raw)),
        "/reference",
    ),
    "lookup_token": (
        lambda w, raw: w.bob.post(LOOKUPS, lookup_body(identifiers=with_token(raw))),
        "/identifiers/1/token",
    ),
    "lookup_consent_reference": (
        lambda w, raw: w.bob.post(LOOKUPS, lookup_body(consent_reference=raw)),
        "/consent_reference",
    ),
    "withdraw_reason": (
        lambda w, raw: w.alice.post(
            f"{CASES}/{w.alice.extra['case_id']}/withdraw", {"reason": raw}
        ),
        "/reason",
    ),
    "list_filter_reference": (lambda w, raw: w.alice.get(CASES, {"reference": raw}), "/reference"),
}


def sent_identifier_kind_mismatch(raw: str) -> dict:
    return {"kind": "fax", "token": raw}


@pytest.mark.parametrize("raw", RAW_VALUES.values(), ids=RAW_VALUES.keys())
@pytest.mark.parametrize("where", REQUESTS.keys())
def test_it_refuses_raw_identifiers_and_forgets_them(world, every_log_line, where, raw):
    world.alice.extra["case_id"] = submit_case(world.alice)["id"]
    cases_before = Case.objects.count()
    events_before = AuditEvent.objects.count()
    send, pointer = REQUESTS[where]

    response = send(world, raw)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "raw_pii_rejected"
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [(pointer, "raw_pii_rejected")]
    # nowhere to be read again: response, logs, audit trail, database
    assert raw not in response.content.decode()
    assert raw not in json.dumps(body, ensure_ascii=False)
    assert not [line for line in every_log_line if raw in line]
    assert AuditEvent.objects.count() == events_before
    assert raw not in json.dumps(
        list(AuditEvent.objects.values("details", "object_id")), ensure_ascii=False
    )
    assert Case.objects.count() == cases_before
    assert not Case.objects.filter(reference=raw).exists()
    assert not Lookup.objects.exists() and not Sighting.objects.exists()
    assert Case.objects.get(pk=world.alice.extra["case_id"]).status == "active"


def test_it_reports_raw_pii_before_any_other_fault_of_the_token(world):
    # wrong kind AND a raw phone as token: the raw identifier is what the member must hear
    response = world.alice.post(
        CASES, case_payload(identifiers=[sent_identifier_kind_mismatch("13812345678")])
    )
    body = response.json()
    assert body["code"] == "raw_pii_rejected"
    assert body["errors"] == [
        {
            "pointer": "/identifiers/0/token",
            "code": "raw_pii_rejected",
            "detail": body["errors"][0]["detail"],
        }
    ]
    assert "13812345678" not in response.content.decode()


def test_it_refuses_raw_pii_in_a_reference_longer_than_allowed(world):
    # the screen runs before the length check, so the code is still raw_pii_rejected
    reference = "x" * 200 + " 13812345678"
    response = world.alice.post(CASES, case_payload(reference=reference))
    assert response.json()["code"] == "raw_pii_rejected"


def test_it_does_not_remember_an_idempotency_key_of_a_refused_request(world):
    response = world.alice.post(
        CASES, case_payload(reference="13812345678"), HTTP_IDEMPOTENCY_KEY="pii"
    )
    assert response.json()["code"] == "raw_pii_rejected"
    assert not IdempotencyKey.objects.exists() and not CaseIdentifier.objects.exists()


@pytest.mark.parametrize(
    "clean",
    [
        "CASE-2026-0042",
        "2026-10-01 批次 7",
        "贷款申请-00017",
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    ],
)
def test_it_accepts_ordinary_references(world, clean):
    assert world.alice.post(CASES, case_payload(reference=clean)).status_code == 201

"""Subject access: every case still on record and every lookup of one identifier, for a data
subject's request through a compliance officer (API and the admin's CSV rows)."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from registry import tokens
from registry.actors import Actor
from registry.admin.subject_access import subject_access_csv_rows
from registry.errors import NotFound
from registry.models import AuditEvent, CaseIdentifier, Lookup, LookupLogEntry
from registry.selectors.compliance import subject_access_report
from tests.support.api import assert_problem
from tests.support.factories import fresh_phone, identifier, lookup, submit_case, token_for

pytestmark = pytest.mark.django_db
SUBJECT_ACCESS = "/api/v1/compliance/subject-access"


def report_for(party, ident: dict):
    return party.get(SUBJECT_ACCESS, {"kind": ident["kind"], "token": ident["token"]})


def test_it_reports_every_case_and_lookup_of_an_identifier(world, frozen_now):
    subject = identifier("phone", fresh_phone())
    other = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[subject, identifier("email", "a@b.example")])
    submit_case(world.carol, identifiers=[other])
    first = lookup(world.bob, [subject], purpose="loan_application")
    frozen_now.advance(hours=2)
    second = lookup(world.carol, [other, subject], purpose="credit_review")
    lookup(world.carol, [other])  # not about the subject

    response = report_for(world.officer, subject)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "phone" and len(body["fingerprint"]) == 16
    assert [(c["case_id"], c["member"], c["category"], c["status"]) for c in body["cases"]] == [
        (case["id"], "ALICE_BANK", "identity_theft", "active")
    ]
    assert body["cases"][0]["confirmed_at"] == case["confirmed_at"]
    assert body["cases"][0]["expires_at"] == case["expires_at"]
    assert [(x["lookup_id"], x["member"], x["purpose"]) for x in body["lookups"]] == [
        (second["lookup_id"], "CAROL_CREDIT", "credit_review"),
        (first["lookup_id"], "BOB_LOANS", "loan_application"),
    ]
    assert body["lookups"][0]["looked_up_at"] > body["lookups"][1]["looked_up_at"]


def test_it_shows_the_dispute_and_the_statement_of_a_case(world):
    subject = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[subject])
    filed = world.bob.post(
        "/api/v1/disputes", {"case_id": case["id"], "identifier": subject, "reason": "not_me"}
    )
    assert filed.status_code == 201, filed.content
    (reported,) = report_for(world.officer, subject).json()["cases"]
    assert reported["status"] == "disputed"
    assert [(d["dispute_id"], d["status"]) for d in reported["disputes"]] == [
        (filed.json()["id"], "open")
    ]
    world.officer.post(
        f"/api/v1/disputes/{filed.json()['id']}/decision",
        {
            "outcome": "rejected",
            "rationale": "Evidence holds.",
            "subject_statement": "I contest this listing.",
        },
    )
    (reported,) = report_for(world.officer, subject).json()["cases"]
    assert reported["status"] == "active" and reported["has_subject_statement"] is True
    assert reported["disputes"][0]["status"] == "rejected"


def test_it_leaves_out_cases_that_left_the_registry(world):
    subject = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[subject])
    kept = submit_case(world.carol, identifiers=[subject])
    world.alice.post(f"/api/v1/cases/{case['id']}/withdraw", {"reason": "Mistake"})
    body = report_for(world.officer, subject).json()
    assert [c["case_id"] for c in body["cases"]] == [kept["id"]]


def test_it_answers_an_identifier_it_never_saw_with_empty_lists(world):
    body = report_for(world.officer, identifier("phone", fresh_phone())).json()
    assert body["cases"] == [] and body["lookups"] == []


def test_it_finds_rows_at_every_pepper_version(world, settings):
    """Mid-rotation, some rows are at the old layer and some at the new one."""
    token = token_for("phone", fresh_phone())
    old_layers = tokens.digest_layers(token)
    settings.REGISTRY_PREVIOUS_PEPPERS = [settings.REGISTRY_PEPPER]
    settings.REGISTRY_PEPPER = "33" * 32
    tokens.configured_peppers.cache_clear()
    try:
        layers = tokens.digest_layers(token)
        assert len(layers) == 2 and layers[0] == old_layers[0]
        case = submit_case(world.alice, identifiers=[{"kind": "phone", "token": token}])
        assert CaseIdentifier.objects.get(case_id=case["id"]).pepper_version == 2
        old_lookup = Lookup.objects.create(
            member=world.bob.member,
            purpose="account_opening",
            identifier_count=1,
            match_count=0,
            created_at=timezone.now() - timedelta(days=3),
        )
        LookupLogEntry.objects.create(  # logged before the rotation reached it
            lookup=old_lookup,
            member=world.bob.member,
            kind="phone",
            digest=layers[0],
            pepper_version=1,
            created_at=old_lookup.created_at,
        )
        body = report_for(world.officer, {"kind": "phone", "token": token}).json()
    finally:
        tokens.configured_peppers.cache_clear()
    assert [c["case_id"] for c in body["cases"]] == [case["id"]]
    assert [x["lookup_id"] for x in body["lookups"]] == [str(old_lookup.pk)]


def test_it_audits_the_request_with_the_fingerprint_only(world):
    subject = identifier("phone", fresh_phone())
    body = report_for(world.officer, subject).json()
    event = AuditEvent.objects.get(action="compliance.subject_access")
    assert event.actor_type == "officer" and event.officer == "officer"
    assert event.details["fingerprint"] == body["fingerprint"]
    trail = json.dumps(list(AuditEvent.objects.values("details", "object_id")))
    assert subject["token"] not in trail and subject["token"][:32] not in trail


def test_it_is_for_compliance_officers_only(world):
    subject = identifier("phone", fresh_phone())
    for member in (world.alice, world.bob):
        assert_problem(report_for(member, subject), 403, "forbidden_scope")
    assert_problem(report_for(world.anonymous, subject), 401, "unauthenticated")
    with pytest.raises(NotFound):
        subject_access_report(
            actor=Actor("member", member=world.alice.member), kind="phone", token=subject["token"]
        )
    assert not AuditEvent.objects.filter(action="compliance.subject_access").exists()


def test_it_validates_kind_and_token(world):
    token = "a" * 128
    bad = [
        ({"kind": "passport", "token": token}, "validation_error"),
        ({"token": token}, "validation_error"),
        ({"kind": "phone", "token": "ab" * 10}, "validation_error"),
        ({"kind": "phone", "token": "A" * 128}, "validation_error"),
        ({"kind": "phone"}, "validation_error"),
        ({"kind": "phone", "token": "+8613812345678"}, "raw_pii_rejected"),
        ({"kind": "email", "token": "li.na@example.com"}, "raw_pii_rejected"),
    ]
    for params, code in bad:
        body = assert_problem(world.officer.get(SUBJECT_ACCESS, params), 400, code)
        assert "13812345678" not in json.dumps(body)
    assert not AuditEvent.objects.filter(action="compliance.subject_access").exists()


def test_it_gives_the_admin_the_same_report_as_csv_rows(world):
    subject = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[subject])
    seen = lookup(world.bob, [subject], purpose="fraud_investigation")
    report = subject_access_report(
        actor=Actor.for_officer(world.officer.user), kind="phone", token=subject["token"]
    )
    out = io.StringIO()
    csv.writer(out).writerows(subject_access_csv_rows(report))
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert len(header) == len(rows[0]) == len(rows[1])
    assert [row[:3] for row in rows] == [
        ["Case", case["id"], "ALICE_BANK"],
        ["Lookup", seen["lookup_id"], "BOB_LOANS"],
    ]
    assert rows[1][4] == "Fraud investigation"
    assert rows[0][-2:] == ["Mobile phone number", report["fingerprint"]]
    assert subject["token"] not in out.getvalue()

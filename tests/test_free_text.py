"""Free text (what members and officers write in their own words) never enters the
append-only audit trail: only its length does. And what officers type in the admin passes
the same raw-identifier screen as the API's free-text fields (issue 13, part 4)."""

import json

import pytest

from registry.models import ApiKey, AuditEvent, Case, Dispute, Member
from tests.support.admin import ADMIN, decide_url
from tests.support.audit import events
from tests.support.factories import case_payload, disputed_case, submit_case

pytestmark = pytest.mark.django_db

RAW = {
    "mobile slashes": "客户手机 138/1234/5678",
    "mobile zero-width": "tel 138\u200b1234\u200b5678",
    "resident id": "身份证11010519491231002X号",
    "email full-width dot": "zhang.san@example。com",
}


def audit_text() -> str:
    return json.dumps(
        list(AuditEvent.objects.values_list("details", flat=True)), ensure_ascii=False
    )


def test_it_keeps_only_the_length_of_free_text_in_the_audit_trail(world, officer):
    words = {
        "reference": "REF-Zq-ref-Wv",
        "withdraw": "Zq withdrawal reason Wv",
        "statement": "Zq dispute statement Wv",
        "response": "Zq response statement Wv",
        "rationale": "Zq decision rationale Wv",
        "subject": "Zq subject statement Wv",
        "suspension": "Zq suspension rationale Wv",
        "search": "Zq-search-Wv",
    }
    payload = case_payload(reference=words["reference"])
    case = submit_case(world.alice, **payload)
    filed = world.bob.post(
        "/api/v1/disputes",
        {
            "case_id": case["id"],
            "identifier": payload["identifiers"][0],
            "reason": "not_me",
            "statement": words["statement"],
        },
    ).json()
    world.alice.post(
        f"/api/v1/disputes/{filed['id']}/response",
        {"position": "maintain", "statement": words["response"]},
    )
    decided = world.officer.post(
        f"/api/v1/disputes/{filed['id']}/decision",
        {
            "outcome": "rejected",
            "rationale": words["rationale"],
            "subject_statement": words["subject"],
        },
    )
    assert decided.status_code == 200, decided.content
    other = submit_case(world.alice)
    withdrawn = world.alice.post(
        f"/api/v1/cases/{other['id']}/withdraw", {"reason": words["withdraw"]}
    )
    assert withdrawn.status_code == 200, withdrawn.content
    member = world.carol.member
    suspended = officer.post(
        f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": words["suspension"]}
    )
    assert suspended.status_code == 302
    exported = officer.get(f"{ADMIN}registry/auditevent/export/?q={words['search']}")
    assert exported.status_code == 200

    text = audit_text()
    assert [name for name, value in words.items() if value in text] == []
    submitted = events("case.submitted", object_id=case["id"]).get()
    assert submitted.details["reference_length"] == len(words["reference"])
    assert events("member.suspended").get().details == {
        "rationale_length": len(words["suspension"])
    }
    assert events("audit.exported").get().details["filters"] == {"q_length": len(words["search"])}


def test_it_keeps_an_export_filter_that_looks_like_an_identifier_by_its_length(world, officer):
    raw = "13812345678"
    officer.get(f"{ADMIN}registry/auditevent/export/?object_id={raw}&action=case.submitted")
    filters = events("audit.exported").get().details["filters"]
    assert filters == {"object_id_length": 11, "action": "case.submitted"}
    assert raw not in audit_text()


# --- officers' free text in the admin: the same screen ----------------------------------------


def suspend(world, officer, text):
    member = world.carol.member
    response = officer.post(f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": text})
    assert Member.objects.get(pk=member.pk).status == "active"
    return response, "rationale"


def decide(world, officer, text):
    _, _, dispute = disputed_case(world)
    response = officer.post(decide_url(dispute["id"]), {"outcome": "upheld", "rationale": text})
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    return response, "rationale"


def attach_statement(world, officer, text):
    _, _, dispute = disputed_case(world)
    response = officer.post(
        decide_url(dispute["id"]),
        {"outcome": "rejected", "rationale": "Police report checked.", "subject_statement": text},
    )
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    return response, "subject_statement"


def withdraw(world, officer, text):
    case = submit_case(world.alice, **case_payload())
    response = officer.post(f"{ADMIN}registry/case/{case['id']}/withdraw/", {"reason": text})
    assert Case.objects.get(pk=case["id"]).status == "active"
    return response, "reason"


def label_key(world, officer, text):
    keys = ApiKey.objects.count()
    response = officer.post(
        f"{ADMIN}registry/apikey/add/",
        {"member": world.alice.member.pk, "scopes": ["lookup"], "name": text},
    )
    assert ApiKey.objects.count() == keys
    return response, "name"


def changes_by_officer() -> int:
    """Audited changes (the decision page's own view of the dispute is audited as read)."""
    return AuditEvent.objects.filter(officer="officer").exclude(action__endswith=".viewed").count()


OFFICER_TEXTS = {
    "suspension rationale": suspend,
    "decision rationale": decide,
    "subject statement": attach_statement,
    "withdrawal reason": withdraw,
    "key label": label_key,
}


@pytest.mark.parametrize("raw", RAW.values(), ids=RAW.keys())
@pytest.mark.parametrize("where", OFFICER_TEXTS.keys())
def test_it_refuses_a_raw_identifier_in_what_an_officer_types(world, officer, where, raw):
    before = changes_by_officer()

    response, field = OFFICER_TEXTS[where](world, officer, raw)

    errors = response.context["form"].errors.as_data()[field]
    assert [error.code for error in errors] == ["raw_pii_rejected"]
    assert raw not in " ".join(str(message) for error in errors for message in error)
    assert changes_by_officer() == before
    assert raw not in audit_text()


# --- admin choice fields: an error never repeats the value -----------------------------------

MARKER = "Zq-marker-Wv"


def test_no_admin_form_error_repeats_a_submitted_choice(world, officer):
    member = world.alice.member
    _, _, dispute = disputed_case(world)
    posts = [
        (f"{ADMIN}registry/member/{member.pk}/limit/", {"scope": MARKER, "per_minute": 1}),
        (decide_url(dispute["id"]), {"outcome": MARKER, "rationale": "Checked."}),
        (f"{ADMIN}subject-access/", {"kind": MARKER, "token": "a" * 128}),
        (f"{ADMIN}registry/apikey/add/", {"member": member.pk, "scopes": [MARKER]}),
        (f"{ADMIN}registry/apikey/add/", {"member": MARKER, "scopes": ["lookup"]}),
    ]
    for url, data in posts:
        response = officer.post(url, data)
        assert response.status_code in (200, 400), (url, response.status_code)
        form = response.context["form"]
        assert form.errors, url
        assert MARKER not in str(form.errors), (url, form.errors)

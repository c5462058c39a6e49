"""Closed does not mean gone, unless the registry makes it so (issue 13, part 5).

- The permanent audit trail of a case carries its id, never its reference nor fingerprints of
  its identifiers (which would tie a person to the case after the case is gone): checked on
  every event written on submission, dispute, response, decision, withdrawal, removal, expiry.
- The free text of closed cases (reference, subject's statement) and of decided disputes
  (statements, rationale) is blanked by the closed_text_scrub job once the scrub period
  (REGISTRY_CLOSED_TEXT_SCRUB_DAYS, 30 days) has passed; its JobRun and audit events hold
  counts only.
"""

import json

import pytest
from django.utils import timezone

from registry.models import AuditEvent, Case, CaseIdentifier, Dispute, JobRun
from registry.services.jobs import job_execute
from tests.support.factories import fresh_phone, identifier, lookup, submit_case

pytestmark = pytest.mark.django_db
DISPUTES = "/api/v1/disputes"
STATEMENT = "The applicant says her documents were stolen in May."
ANSWER = "Our file shows the applicant in branch."
RATIONALE = "Police report filed by the subject matches the dates of the application."
SUBJECT_SAYS = "The subject states she repaid the loan in full."


def reported(world, reference: str):
    """alice reports a case with a phone and a resident id; returns (case, identifiers,
    their fingerprints)."""
    idents = [
        identifier("phone", fresh_phone()),
        identifier("cn_resident_id", "11010519491231002X"),
    ]
    case = submit_case(world.alice, reference=reference, identifiers=idents)
    fingerprints = list(
        CaseIdentifier.objects.filter(case_id=case["id"]).values_list("fingerprint", flat=True)
    )
    assert len(fingerprints) == 2
    return case, idents, fingerprints


def disputed(world, case, ident, statement: str = STATEMENT) -> str:
    response = world.bob.post(
        DISPUTES,
        {"case_id": case["id"], "identifier": ident, "reason": "not_me", "statement": statement},
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def decide(world, dispute_id, outcome: str, **extra):
    response = world.officer.post(
        f"{DISPUTES}/{dispute_id}/decision", {"outcome": outcome, "rationale": RATIONALE, **extra}
    )
    assert response.status_code == 200, response.content


def respond(world, dispute_id, position: str):
    response = world.alice.post(
        f"{DISPUTES}/{dispute_id}/response", {"position": position, "statement": ANSWER}
    )
    assert response.status_code == 200, response.content


def events_about(case_id, dispute_ids=()) -> list[AuditEvent]:
    """Every audit event naming the case or its disputes, wherever the id appears."""
    ids = [str(case_id), *map(str, dispute_ids)]
    return [
        event
        for event in AuditEvent.objects.order_by("id")
        if event.object_id in ids or any(i in json.dumps(event.details) for i in ids)
    ]


# --- the audit trail carries case ids only ----------------------------------------------------


def test_it_keeps_no_fingerprint_or_reference_in_the_audit_trail_of_closed_cases(world, frozen_now):
    withdrawn, w_idents, w_fps = reported(world, "ALICE-WITHDRAWN-1")
    w_dispute = disputed(world, withdrawn, w_idents[0])
    respond(world, w_dispute, "withdraw_case")

    removed, r_idents, r_fps = reported(world, "ALICE-REMOVED-2")
    r_dispute = disputed(world, removed, r_idents[1])
    respond(world, r_dispute, "maintain")
    decide(world, r_dispute, "upheld")

    expired, e_idents, e_fps = reported(world, "ALICE-EXPIRED-3")
    e_dispute = disputed(world, expired, e_idents[0])
    Case.objects.filter(pk=expired["id"]).update(expires_at=timezone.localdate(frozen_now()))
    job_execute("expiry")

    plain, p_idents, p_fps = reported(world, "ALICE-WITHDRAWN-4")
    answer = world.alice.post(f"/api/v1/cases/{plain['id']}/withdraw", {"reason": "Closed"})
    assert answer.status_code == 200, answer.content

    checks = [
        (withdrawn, [w_dispute], w_fps, w_idents, {"case.submitted", "case.withdrawn"}),
        (removed, [r_dispute], r_fps, r_idents, {"case.submitted", "case.removed"}),
        (expired, [e_dispute], e_fps, e_idents, {"case.submitted", "cases.expired"}),
        (plain, [], p_fps, p_idents, {"case.submitted", "case.withdrawn"}),
    ]
    for case, dispute_ids, fingerprints, idents, case_actions in checks:
        assert Case.objects.get(pk=case["id"]).status in ("withdrawn", "removed", "expired")
        assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()
        trail = events_about(case["id"], dispute_ids)
        actions = {event.action for event in trail}
        assert case_actions <= actions
        if dispute_ids:
            assert "dispute.filed" in actions
        text = json.dumps([[e.action, e.object_id, e.details] for e in trail])
        for secret in [*fingerprints, case["reference"], *(i["token"] for i in idents)]:
            assert secret not in text, secret
    # every event of the whole trail, not just those naming the cases
    everything = json.dumps(list(AuditEvent.objects.values_list("object_id", "details")))
    for fingerprint in w_fps + r_fps + e_fps + p_fps:
        assert fingerprint not in everything


def test_it_records_what_a_submission_was_without_tying_it_to_a_person(world):
    case, _idents, _fps = reported(world, "ALICE-SUBMITTED-5")
    event = AuditEvent.objects.get(action="case.submitted", object_id=case["id"])
    assert event.details == {
        "category": "identity_theft",
        "confirmed_at": case["confirmed_at"],
        "expires_at": case["expires_at"],
        "identifiers": 2,
        "identifier_kinds": ["cn_resident_id", "phone"],
        "reference_length": len("ALICE-SUBMITTED-5"),  # a length, never the text
    }


# --- the scrub job ---------------------------------------------------------------------------


@pytest.fixture
def closed_and_open(world, frozen_now):
    """One of everything, all closed or decided at the frozen now: a withdrawn case (directly),
    a removed case (upheld dispute), an expired case, a case restored after a rejected
    dispute (live, with the subject's statement), a live case with an open dispute."""
    withdrawn, _w, _ = reported(world, "ALICE-W-1")
    assert (
        world.alice.post(f"/api/v1/cases/{withdrawn['id']}/withdraw", {"reason": "Closed"})
    ).status_code == 200

    removed, r_idents, _ = reported(world, "ALICE-R-2")
    removed_dispute = disputed(world, removed, r_idents[0])
    respond(world, removed_dispute, "maintain")
    decide(world, removed_dispute, "upheld")

    expired, _e, _ = reported(world, "ALICE-E-3")
    Case.objects.filter(pk=expired["id"]).update(expires_at=timezone.localdate(frozen_now()))
    job_execute("expiry")

    restored, s_idents, _ = reported(world, "ALICE-S-4")
    rejected_dispute = disputed(world, restored, s_idents[0])
    decide(world, rejected_dispute, "rejected", subject_statement=SUBJECT_SAYS)

    live, l_idents, _ = reported(world, "ALICE-L-5")
    open_dispute = disputed(world, live, l_idents[0])
    return {
        "closed": [withdrawn["id"], removed["id"], expired["id"]],
        "live": [restored["id"], live["id"]],
        "decided": [removed_dispute, rejected_dispute],
        "open": open_dispute,
        "restored_ident": s_idents[0],
    }


def scrub() -> dict:
    return job_execute("closed_text_scrub")


def test_it_keeps_the_text_during_the_scrub_period(world, frozen_now, closed_and_open):
    frozen_now.advance(days=30, seconds=-1)
    assert scrub()["scrubbed"] == {"case": 0, "dispute": 0}
    for case in Case.objects.filter(pk__in=closed_and_open["closed"]):
        assert case.reference.startswith("ALICE-") and case.text_scrubbed_at is None
    assert Dispute.objects.get(pk=closed_and_open["decided"][0]).statement == STATEMENT


def test_it_blanks_the_text_of_closed_cases_and_decided_disputes_after_the_period(
    world, frozen_now, closed_and_open
):
    frozen_now.advance(days=30, seconds=1)
    summary = scrub()
    assert summary["scrubbed"] == {"case": 3, "dispute": 2}

    for case in Case.objects.filter(pk__in=closed_and_open["closed"]):
        assert (case.reference, case.subject_statement) == ("", "")
        assert case.text_scrubbed_at == frozen_now()
        # what a closed case keeps: who reported what, when, and how it ended
        assert case.member_id == world.alice.member.pk and case.category_id == "identity_theft"
        assert case.confirmed_at and case.expires_at and case.created_at
        assert case.status in ("withdrawn", "removed", "expired") and case.status_changed_at
    for dispute in Dispute.objects.filter(pk__in=closed_and_open["decided"]):
        assert (dispute.statement, dispute.response_statement, dispute.rationale) == ("", "", "")
        assert dispute.text_scrubbed_at == frozen_now()
        assert dispute.reason == "not_me" and dispute.decided_at and dispute.filed_by_id

    # live cases and undecided disputes keep their text; the restored case stays flagged
    for case in Case.objects.filter(pk__in=closed_and_open["live"]):
        assert case.reference.startswith("ALICE-") and case.text_scrubbed_at is None
    restored = Case.objects.get(pk=closed_and_open["live"][0])
    assert restored.subject_statement == SUBJECT_SAYS
    assert Dispute.objects.get(pk=closed_and_open["open"]).statement == STATEMENT
    (seen,) = lookup(world.carol, [closed_and_open["restored_ident"]])["results"][0]["cases"]
    assert seen["has_subject_statement"] is True

    # the member sees its closed case without the reference; the filer the blank dispute
    closed_id = closed_and_open["closed"][0]
    assert world.alice.get(f"/api/v1/cases/{closed_id}").json()["reference"] == ""
    decided = world.bob.get(f"{DISPUTES}/{closed_and_open['decided'][0]}").json()
    assert decided["statement"] == "" and decided["rationale"] == ""


def test_it_records_counts_only_and_does_nothing_twice(world, frozen_now, closed_and_open):
    frozen_now.advance(days=31)
    scrub()
    run = JobRun.objects.filter(job="closed_text_scrub").latest("started_at")
    assert run.status == "succeeded" and run.details["scrubbed"] == {"case": 3, "dispute": 2}
    events = AuditEvent.objects.filter(action="closed_text.scrubbed").order_by("id")
    assert [(e.object_type, e.details["rows"]) for e in events] == [("case", 3), ("dispute", 2)]
    assert all(e.actor_type == "system" for e in events)
    recorded = json.dumps([run.details, *[e.details for e in events]])
    for object_id in [*closed_and_open["closed"], *closed_and_open["decided"]]:
        assert str(object_id) not in recorded
    assert "ALICE-" not in recorded and STATEMENT not in recorded

    assert scrub()["scrubbed"] == {"case": 0, "dispute": 0}
    assert AuditEvent.objects.filter(action="closed_text.scrubbed").count() == 2


def test_it_uses_the_configured_period_and_small_batches(world, frozen_now, settings):
    settings.REGISTRY_CLOSED_TEXT_SCRUB_DAYS = 7
    for n in range(3):
        case, _i, _f = reported(world, f"ALICE-B-{n}")
        world.alice.post(f"/api/v1/cases/{case['id']}/withdraw", {"reason": "Closed"})
    frozen_now.advance(days=7, seconds=1)
    summary = job_execute("closed_text_scrub", batch_size=2)
    assert summary["scrubbed"]["case"] == 3 and summary["batches"] == 2
    assert not Case.objects.exclude(reference="").filter(status="withdrawn").exists()

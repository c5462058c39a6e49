"""Disputes: filing, the reporting member's response, the officer's decision, deadlines,
reminders and alerts, and who may see what. Lookups are checked at every step."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from registry.actors import Actor
from registry.errors import InvalidTransition, NotFound, RawPiiRejected
from registry.models import AuditEvent, Case, CaseIdentifier, Dispute, Member, OutboxTask
from registry.services.disputes import dispute_deadlines_sweep, dispute_decide
from registry.services.notifications import (
    dispute_decision_notice_send,
    dispute_filed_notice_send,
    dispute_overdue_alert_send,
    dispute_reminder_send,
    officer_emails,
)
from tests.support.admin import ADMIN, verified_client
from tests.support.api import assert_problem
from tests.support.factories import fresh_phone, identifier, lookup, submit_case
from tests.support.peppers import P1, P2, peppers
from tests.support.world import make_officer, race

pytestmark = pytest.mark.django_db
DISPUTES = "/api/v1/disputes"
STATEMENT = "The applicant says the loan was taken out by someone who stole her documents."
RATIONALE = "Police report filed by the subject matches the dates of the application."


def dispute_url(dispute_id, action: str = "") -> str:
    return f"{DISPUTES}/{dispute_id}" + (f"/{action}" if action else "")


# The identifier each listed case was reported with: what a member filing a dispute for the
# data subject holds (file_dispute sends it unless told otherwise).
IDENTIFIER_OF: dict[str, dict] = {}


def listed_case(world, party=None):
    """alice reports a case with a fresh phone; returns (case, the phone's identifier)."""
    ident = identifier("phone", fresh_phone())
    case = submit_case(party or world.alice, identifiers=[ident])
    IDENTIFIER_OF[case["id"]] = ident
    return case, ident


def dispute_body(case_id, **overrides) -> dict:
    return {
        "case_id": str(case_id),
        "identifier": IDENTIFIER_OF[str(case_id)],
        "reason": "identity_stolen",
        "statement": STATEMENT,
        **overrides,
    }


def file_dispute(party, case_id, **overrides) -> dict:
    body = dispute_body(case_id, **overrides)
    response = party.post(DISPUTES, body)
    assert response.status_code == 201, response.content
    return response.json()


def respond(party, dispute_id, position: str, statement: str = "We have the signed file."):
    return party.post(
        dispute_url(dispute_id, "response"), {"position": position, "statement": statement}
    )


def decide(officer, dispute_id, outcome: str, **extra):
    return officer.post(
        dispute_url(dispute_id, "decision"), {"outcome": outcome, "rationale": RATIONALE, **extra}
    )


def seen_in_lookup(party, ident) -> list[dict]:
    """The cases a lookup of `ident` returns to `party`."""
    (result,) = lookup(party, [ident])["results"]
    return result["cases"]


def statuses_in_lookup(party, ident) -> list[str]:
    return [case["status"] for case in seen_in_lookup(party, ident)]


def actions_for(object_id) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(object_id))
        .order_by("id")
        .values_list("action", flat=True)
    )


def case_status(case_id) -> str:
    return Case.objects.get(pk=case_id).status


# --- the whole life of a dispute -------------------------------------------------------------


def test_it_walks_a_dispute_to_upheld_and_removes_the_case(world):
    case, ident = listed_case(world)
    assert statuses_in_lookup(world.bob, ident) == ["active"]

    dispute = file_dispute(world.bob, case["id"], reason="not_me")
    assert dispute["status"] == "open" and dispute["case_id"] == case["id"]
    assert statuses_in_lookup(world.bob, ident) == ["disputed"]
    assert statuses_in_lookup(world.carol, ident) == ["disputed"]

    answered = respond(world.alice, dispute["id"], "maintain")
    assert answered.status_code == 200, answered.content
    assert answered.json()["status"] == "responded"
    assert answered.json()["response_position"] == "maintain"
    assert statuses_in_lookup(world.bob, ident) == ["disputed"]

    decided = decide(world.officer, dispute["id"], "upheld")
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "upheld" and decided.json()["case_status"] == "removed"
    assert seen_in_lookup(world.bob, ident) == []
    assert case_status(case["id"]) == "removed"
    assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()

    assert actions_for(dispute["id"])[:3] == [
        "dispute.filed",
        "dispute.responded",
        "dispute.decided",
    ]
    assert "case.removed" in actions_for(case["id"])
    decided_event = AuditEvent.objects.get(action="dispute.decided", object_id=dispute["id"])
    assert decided_event.actor_type == "officer" and decided_event.officer == "officer"
    assert decided_event.details["rationale_length"] == len(RATIONALE)


def test_it_walks_a_dispute_to_rejected_and_flags_the_subjects_statement(world):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert statuses_in_lookup(world.carol, ident) == ["disputed"]
    assert respond(world.alice, dispute["id"], "maintain").status_code == 200

    statement = "The subject states she repaid the loan in full in March."
    decided = decide(world.officer, dispute["id"], "rejected", subject_statement=statement)
    assert decided.status_code == 200, decided.content
    assert decided.json()["status"] == "rejected" and decided.json()["case_status"] == "active"

    (seen,) = seen_in_lookup(world.carol, ident)
    assert seen["status"] == "active" and seen["has_subject_statement"] is True
    assert Case.objects.get(pk=case["id"]).subject_statement == statement
    assert CaseIdentifier.objects.filter(case_id=case["id"]).exists()
    assert "case.restored" in actions_for(case["id"])


def test_it_restores_a_rejected_case_without_a_statement_unflagged(world):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert decide(world.officer, dispute["id"], "rejected").status_code == 200
    (seen,) = seen_in_lookup(world.carol, ident)
    assert seen["status"] == "active" and seen["has_subject_statement"] is False


def test_it_withdraws_the_case_when_the_member_answers_withdraw_case(world):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])

    answered = respond(world.alice, dispute["id"], "withdraw_case", "Our file is incomplete.")
    assert answered.status_code == 200, answered.content
    body = answered.json()
    assert body["status"] == "upheld" and body["case_status"] == "withdrawn"
    assert body["response_position"] == "withdraw_case" and body["rationale"]
    assert seen_in_lookup(world.bob, ident) == []
    assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()
    assert actions_for(dispute["id"])[:3] == [
        "dispute.filed",
        "dispute.responded",
        "dispute.decided",
    ]
    assert "case.withdrawn" in actions_for(case["id"])
    # the case was closed by the member: the officer has nothing left to decide
    assert_problem(decide(world.officer, dispute["id"], "rejected"), 409, "invalid_transition")


def test_it_closes_the_dispute_when_the_member_withdraws_the_case_directly(world):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    response = world.alice.post(
        f"/api/v1/cases/{case['id']}/withdraw", {"reason": "Closed after review"}
    )
    assert response.status_code == 200, response.content
    assert Dispute.objects.get(pk=dispute["id"]).status == "upheld"
    assert world.bob.get(dispute_url(dispute["id"])).json()["status"] == "upheld"
    assert seen_in_lookup(world.carol, ident) == []


def test_it_drops_an_overdue_case_from_lookups_at_the_deadline(world, frozen_now):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    filed_at = frozen_now()
    assert Dispute.objects.get(pk=dispute["id"]).due_at == filed_at + timedelta(days=20)

    frozen_now.advance(days=20, seconds=-1)
    assert statuses_in_lookup(world.carol, ident) == ["disputed"]
    assert world.bob.get(dispute_url(dispute["id"])).json()["status"] == "open"

    frozen_now.advance(seconds=2)  # past due_at; no job has run
    assert seen_in_lookup(world.carol, ident) == []
    assert world.bob.get(dispute_url(dispute["id"])).json()["status"] == "overdue"
    assert (
        world.alice.get(f"{DISPUTES}?status=overdue").json()["results"][0]["id"] == (dispute["id"])
    )
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"  # read-time, not the job's
    assert_problem(respond(world.alice, dispute["id"], "maintain"), 409, "invalid_transition")

    assert dispute_deadlines_sweep()["overdue"] == 1
    assert Dispute.objects.get(pk=dispute["id"]).status == "overdue"
    event = AuditEvent.objects.get(action="dispute.overdue", object_id=dispute["id"])
    assert event.actor_type == "system"
    assert seen_in_lookup(world.carol, ident) == []

    assert decide(world.officer, dispute["id"], "rejected").status_code == 200
    assert statuses_in_lookup(world.carol, ident) == ["active"]


def test_it_removes_an_overdue_case_when_the_officer_upholds(world, frozen_now):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert respond(world.alice, dispute["id"], "maintain").status_code == 200
    frozen_now.advance(days=21)
    dispute_deadlines_sweep()
    assert world.alice.get(dispute_url(dispute["id"])).json()["status"] == "overdue"
    assert decide(world.officer, dispute["id"], "upheld").status_code == 200
    assert case_status(case["id"]) == "removed"
    assert seen_in_lookup(world.carol, ident) == []


def test_it_lets_the_member_withdraw_an_overdue_case(world, frozen_now):
    case, _ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    frozen_now.advance(days=25)
    answered = respond(world.alice, dispute["id"], "withdraw_case")
    assert answered.status_code == 200, answered.content
    assert answered.json()["status"] == "upheld"
    assert case_status(case["id"]) == "withdrawn"


def test_it_uses_the_configured_deadline(world, settings, frozen_now):
    settings.REGISTRY_DISPUTE_DEADLINE_DAYS = 3
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert Dispute.objects.get(pk=dispute["id"]).due_at == frozen_now() + timedelta(days=3)
    frozen_now.advance(days=3, seconds=1)
    assert seen_in_lookup(world.carol, ident) == []


# --- transitions ------------------------------------------------------------------------------


def test_it_allows_one_undecided_dispute_per_case(world):
    case, ident = listed_case(world)
    first = file_dispute(world.bob, case["id"])
    assert_problem(
        world.carol.post(DISPUTES, dispute_body(case["id"], reason="other")), 409, "conflict"
    )
    assert Dispute.objects.filter(case_id=case["id"]).count() == 1

    assert decide(world.officer, first["id"], "rejected").status_code == 200
    second = file_dispute(world.carol, case["id"], reason="resolved")  # a decided one is over
    assert second["status"] == "open"
    assert statuses_in_lookup(world.bob, ident) == ["disputed"]


def test_it_refuses_a_second_decision_and_changes_nothing(world):
    case, _ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert decide(world.officer, dispute["id"], "rejected").status_code == 200
    before = Dispute.objects.get(pk=dispute["id"])
    events = AuditEvent.objects.count()

    assert_problem(decide(world.officer, dispute["id"], "upheld"), 409, "invalid_transition")
    after = Dispute.objects.get(pk=dispute["id"])
    assert (after.status, after.decided_at, after.rationale) == (
        before.status,
        before.decided_at,
        before.rationale,
    )
    assert case_status(case["id"]) == "active"
    assert AuditEvent.objects.count() == events


def test_it_refuses_a_response_after_the_decision_or_a_second_maintain(world):
    case, _ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert respond(world.alice, dispute["id"], "maintain").status_code == 200
    assert_problem(respond(world.alice, dispute["id"], "maintain"), 409, "invalid_transition")
    assert decide(world.officer, dispute["id"], "rejected").status_code == 200
    assert_problem(respond(world.alice, dispute["id"], "withdraw_case"), 409, "invalid_transition")
    assert case_status(case["id"]) == "active"


def test_it_refuses_disputes_about_cases_that_are_not_live(world, frozen_now):
    """The same 422 as for a wrong identifier: filing tells nothing about which cases exist."""
    unknown = "00000000-0000-4000-8000-000000000000"
    some_phone = identifier("phone", fresh_phone())
    assert_problem(
        world.bob.post(
            DISPUTES, {"case_id": unknown, "identifier": some_phone, "reason": "not_me"}
        ),
        422,
        "identifier_not_on_case",
    )
    withdrawn, _ = listed_case(world)
    world.alice.post(f"/api/v1/cases/{withdrawn['id']}/withdraw", {"reason": "Mistake"})
    assert_problem(
        world.bob.post(DISPUTES, dispute_body(withdrawn["id"])), 422, "identifier_not_on_case"
    )
    expiring, _ = listed_case(world)
    frozen_now.advance(days=6 * 365)  # past its retention; the expiry job has not run
    assert_problem(
        world.bob.post(DISPUTES, dispute_body(expiring["id"])), 422, "identifier_not_on_case"
    )
    assert not Dispute.objects.exists()


def test_it_validates_what_it_is_sent(world):
    case, ident = listed_case(world)
    bad = [
        {"case_id": "not-a-uuid", "identifier": ident, "reason": "not_me"},
        {"case_id": case["id"], "identifier": ident, "reason": "because"},
        {"case_id": case["id"], "identifier": ident},
        {"case_id": case["id"], "identifier": ident, "reason": "not_me", "statement": "x" * 5000},
        {"case_id": case["id"], "reason": "not_me"},
        {"case_id": case["id"], "identifier": ident["token"], "reason": "not_me"},
        {"case_id": case["id"], "identifier": {**ident, "kind": "fax"}, "reason": "not_me"},
        {"case_id": case["id"], "identifier": {**ident, "token": "ab" * 10}, "reason": "not_me"},
        {"case_id": case["id"], "identifier": {"kind": "phone"}, "reason": "not_me"},
    ]
    for body in bad:
        assert_problem(world.bob.post(DISPUTES, body), 400, "validation_error")
    assert not Dispute.objects.exists()
    dispute = file_dispute(world.bob, case["id"])
    assert_problem(
        world.alice.post(dispute_url(dispute["id"], "response"), {"position": "ignore"}),
        400,
        "validation_error",
    )
    assert_problem(
        world.officer.post(
            dispute_url(dispute["id"], "decision"), {"outcome": "maybe", "rationale": RATIONALE}
        ),
        400,
        "validation_error",
    )
    assert_problem(
        world.officer.post(dispute_url(dispute["id"], "decision"), {"outcome": "upheld"}),
        400,
        "validation_error",
    )
    assert_problem(
        world.officer.post(
            dispute_url(dispute["id"], "decision"),
            {
                "outcome": "upheld",
                "rationale": RATIONALE,
                "subject_statement": "Only for rejections.",
            },
        ),
        400,
        "validation_error",
    )
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    assert case_status(case["id"]) == "disputed"


def test_it_screens_statements_and_rationales_for_raw_identifiers(world):
    case, _ = listed_case(world)
    raw = "Call her back on 13812345678 about it"
    assert_problem(
        world.bob.post(DISPUTES, dispute_body(case["id"], statement=raw)),
        400,
        "raw_pii_rejected",
    )
    assert not Dispute.objects.exists() and case_status(case["id"]) == "active"

    dispute = file_dispute(world.bob, case["id"])
    assert_problem(
        respond(world.alice, dispute["id"], "maintain", "Card 6222021234567890128"),
        400,
        "raw_pii_rejected",
    )
    assert_problem(
        world.officer.post(
            dispute_url(dispute["id"], "decision"),
            {"outcome": "rejected", "rationale": "ID 11010519491231002X"},
        ),
        400,
        "raw_pii_rejected",
    )
    assert_problem(
        world.officer.post(
            dispute_url(dispute["id"], "decision"),
            {
                "outcome": "rejected",
                "rationale": RATIONALE,
                "subject_statement": "Write to li.na@example.com",
            },
        ),
        400,
        "raw_pii_rejected",
    )
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    assert "13812345678" not in json.dumps(list(AuditEvent.objects.values("details")))


def test_it_never_copies_statements_into_the_audit_trail(world):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    respond(world.alice, dispute["id"], "maintain", "Our evidence is on file, ref 77-A.")
    decide(world.officer, dispute["id"], "rejected", subject_statement="I repaid it in March.")
    trail = json.dumps(list(AuditEvent.objects.values("details")), default=str)
    for text in (STATEMENT, "Our evidence is on file", RATIONALE, "I repaid it in March."):
        assert text not in trail
    filed = AuditEvent.objects.get(action="dispute.filed", object_id=dispute["id"])
    assert filed.member_id == world.bob.member.pk
    assert filed.details["statement_length"] == len(STATEMENT)
    responded = AuditEvent.objects.get(action="dispute.responded", object_id=dispute["id"])
    assert responded.member_id == world.alice.member.pk


# --- who sees what ----------------------------------------------------------------------------


def test_it_shows_a_dispute_only_to_the_two_members_concerned_and_officers(world):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    url = dispute_url(dispute["id"])

    for party in (world.alice, world.bob, world.officer):
        assert party.get(url).status_code == 200
        assert [d["id"] for d in party.get(DISPUTES).json()["results"]] == [dispute["id"]]
    assert world.carol.get(DISPUTES).json()["results"] == []
    assert_problem(world.carol.get(url), 404, "not_found")
    assert_problem(respond(world.carol, dispute["id"], "maintain"), 404, "not_found")
    # the filer sees it but may not answer for the reporting member
    assert_problem(respond(world.bob, dispute["id"], "withdraw_case"), 404, "not_found")
    # members cannot decide, officers cannot file
    assert_problem(decide(world.alice, dispute["id"], "rejected"), 403, "forbidden_scope")
    assert_problem(
        world.officer.post(DISPUTES, dispute_body(case["id"], reason="other")),
        403,
        "forbidden_scope",
    )
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"


def test_it_names_the_other_member_only_to_officers(world, settings):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    as_bob = world.bob.get(dispute_url(dispute["id"])).json()
    as_alice = world.alice.get(dispute_url(dispute["id"])).json()
    as_officer = world.officer.get(dispute_url(dispute["id"])).json()
    assert (as_bob["filed_by"], as_bob["reporting_member"]) == ("BOB_LOANS", None)
    assert as_bob["filed_by_you"] is True and as_bob["about_your_case"] is False
    assert (as_alice["filed_by"], as_alice["reporting_member"]) == (None, "ALICE_BANK")
    assert as_alice["filed_by_you"] is False and as_alice["about_your_case"] is True
    assert (as_officer["filed_by"], as_officer["reporting_member"]) == ("BOB_LOANS", "ALICE_BANK")
    settings.REGISTRY_DISCLOSE_REPORTERS = True
    assert world.bob.get(dispute_url(dispute["id"])).json()["reporting_member"] == "ALICE_BANK"


def test_it_lists_disputes_newest_first_with_cursor_pagination(world, frozen_now):
    filed = []
    for _ in range(3):
        case, _ident = listed_case(world)
        filed.append(file_dispute(world.bob, case["id"])["id"])
        frozen_now.advance(minutes=1)
    page = world.bob.get(f"{DISPUTES}?page_size=2").json()
    assert [d["id"] for d in page["results"]] == filed[::-1][:2]
    rest = world.bob.get(page["next"]).json()
    assert [d["id"] for d in rest["results"]] == filed[:1] and rest["next"] is None
    assert_problem(world.bob.get(f"{DISPUTES}?status=bogus"), 400, "validation_error")


def test_it_audits_reads_of_disputes(world):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    world.alice.get(dispute_url(dispute["id"]))
    world.carol.get(dispute_url(dispute["id"]))  # 404: nothing read, nothing recorded
    viewed = AuditEvent.objects.filter(action="dispute.viewed", object_id=dispute["id"])
    assert list(viewed.values_list("member_id", flat=True)) == [world.alice.member.pk]


def test_it_offers_the_decision_service_to_officers_only(world):
    """The admin's dispute desk calls dispute_decide with the signed-in officer."""
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    with pytest.raises(NotFound):
        dispute_decide(
            actor=Actor("member", member=world.alice.member),
            dispute_id=dispute["id"],
            outcome="upheld",
            rationale=RATIONALE,
        )
    with pytest.raises(RawPiiRejected):  # the admin's form is screened too
        dispute_decide(
            actor=Actor.for_officer(world.officer.user),
            dispute_id=dispute["id"],
            outcome="rejected",
            rationale="Confirmed by phone with 13812345678",
        )
    decided = dispute_decide(
        actor=Actor.for_officer(world.officer.user),
        dispute_id=dispute["id"],
        outcome="upheld",
        rationale=RATIONALE,
    )
    assert decided.status == "upheld" and decided.decided_by == world.officer.user
    with pytest.raises(InvalidTransition):
        dispute_decide(
            actor=Actor.for_officer(world.officer.user),
            dispute_id=dispute["id"],
            outcome="rejected",
            rationale=RATIONALE,
        )


# --- concurrency, on the real PostgreSQL ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_accepts_exactly_one_of_two_concurrent_decisions(world):
    for _round in range(3):
        case, _ident = listed_case(world)
        dispute = file_dispute(world.bob, case["id"])
        upheld, rejected = race(
            lambda d=dispute: decide(world.officer, d["id"], "upheld"),
            lambda d=dispute: decide(world.officer, d["id"], "rejected"),
        )
        codes = sorted([upheld.status_code, rejected.status_code])
        assert codes == [200, 409], (upheld.content, rejected.content)
        loser = upheld if upheld.status_code == 409 else rejected
        assert loser.json()["code"] == "invalid_transition"
        winner = "upheld" if upheld.status_code == 200 else "rejected"
        assert Dispute.objects.get(pk=dispute["id"]).status == winner
        assert case_status(case["id"]) == ("removed" if winner == "upheld" else "active")
        assert (
            AuditEvent.objects.filter(action="dispute.decided", object_id=dispute["id"]).count()
            == 1
        )


@pytest.mark.django_db(transaction=True)
def test_it_accepts_exactly_one_of_two_concurrent_filings(world):
    for _round in range(3):
        case, _ident = listed_case(world)
        first, second = race(
            lambda c=case: world.bob.post(DISPUTES, dispute_body(c["id"], reason="not_me")),
            lambda c=case: world.carol.post(DISPUTES, dispute_body(c["id"], reason="other")),
        )
        assert sorted([first.status_code, second.status_code]) == [201, 409]
        assert Dispute.objects.filter(case_id=case["id"]).count() == 1


# --- deadlines, reminders and alerts ----------------------------------------------------------


@pytest.fixture
def desk(settings):
    """E-mail recipients: the reporting member's contact, the configured desk and every active
    officer with an address (world's officer@registry.example)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.REGISTRY_OFFICER_EMAILS = ["desk@registry.example"]
    return {"risk@alice-bank.example", "desk@registry.example", "officer@registry.example"}


def queued(task: str, dispute_id) -> int:
    return OutboxTask.objects.filter(task=task, kwargs={"dispute_id": str(dispute_id)}).count()


def recipients() -> set[str]:
    assert all(len(message.to) == 1 for message in mail.outbox)  # one message per address
    return {message.to[0] for message in mail.outbox}


def test_it_mails_officers_that_are_active_and_configured(world, desk):
    from django.contrib.auth import get_user_model

    retired = make_officer("retired")
    get_user_model().objects.filter(pk=retired.user.pk).update(is_active=False)
    get_user_model().objects.create_user("clerk", email="clerk@registry.example", is_staff=True)
    assert set(officer_emails()) == {"desk@registry.example", "officer@registry.example"}


def test_it_reminds_once_before_the_deadline(world, desk, frozen_now):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    task = "registry.disputes.send_reminder"

    dispute_deadlines_sweep()
    assert queued(task, dispute["id"]) == 0  # 20 days to go: too early
    assert dispute_reminder_send(dispute_id=dispute["id"]) == 0

    frozen_now.advance(days=15, minutes=1)  # inside the 5-day reminder window
    dispute_deadlines_sweep()
    assert queued(task, dispute["id"]) == 1
    assert dispute_reminder_send(dispute_id=dispute["id"]) == 3
    assert recipients() == desk
    assert dispute["id"] in mail.outbox[0].subject and dispute["id"] in mail.outbox[0].body
    assert STATEMENT not in mail.outbox[0].body and "BOB_LOANS" not in mail.outbox[0].body

    dispute_deadlines_sweep()  # sent already: not asked again, and a replay sends nothing
    assert queued(task, dispute["id"]) == 1
    assert dispute_reminder_send(dispute_id=dispute["id"]) == 0
    assert len(mail.outbox) == 3
    assert Dispute.objects.get(pk=dispute["id"]).reminder_sent_at == frozen_now()
    assert actions_for(dispute["id"]).count("dispute.reminder_sent") == 1


def test_it_sends_no_reminder_about_a_case_that_expired_meanwhile(world, desk, frozen_now):
    from registry.services.jobs import job_execute

    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    Case.objects.filter(pk=case["id"]).update(expires_at=timezone.localdate(frozen_now()))
    job_execute("expiry")
    frozen_now.advance(days=15, minutes=1)  # inside the reminder window
    dispute_deadlines_sweep()
    assert queued("registry.disputes.send_reminder", dispute["id"]) == 0


def test_it_alerts_once_when_a_dispute_is_overdue(world, desk, frozen_now):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    task = "registry.disputes.send_overdue_alert"
    frozen_now.advance(days=20, minutes=1)

    assert dispute_overdue_alert_send(dispute_id=dispute["id"]) == 0  # not recorded overdue yet
    result = dispute_deadlines_sweep()
    assert result["overdue"] == 1 and queued(task, dispute["id"]) == 1
    assert queued("registry.disputes.send_reminder", dispute["id"]) == 0  # too late for that
    assert dispute_overdue_alert_send(dispute_id=dispute["id"]) == 3
    assert recipients() == desk
    assert "overdue" in mail.outbox[0].subject

    assert dispute_deadlines_sweep() == {
        "overdue": 0,
        "alerts_enqueued": 0,
        "reminders_enqueued": 0,
    }
    assert dispute_overdue_alert_send(dispute_id=dispute["id"]) == 0
    assert len(mail.outbox) == 3
    assert actions_for(dispute["id"]).count("dispute.overdue") == 1


def test_it_sends_no_reminder_or_alert_for_a_decided_dispute(world, desk, frozen_now):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    frozen_now.advance(days=16)
    dispute_deadlines_sweep()
    assert queued("registry.disputes.send_reminder", dispute["id"]) == 1
    decide(world.officer, dispute["id"], "rejected")
    assert dispute_reminder_send(dispute_id=dispute["id"]) == 0
    frozen_now.advance(days=10)
    assert dispute_deadlines_sweep()["overdue"] == 0
    assert dispute_overdue_alert_send(dispute_id=dispute["id"]) == 0
    assert mail.outbox == []


def test_it_tells_the_members_concerned_when_a_dispute_is_filed_and_decided(world, desk):
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    assert queued("registry.disputes.send_filed_notice", dispute["id"]) == 1
    assert dispute_filed_notice_send(dispute_id=dispute["id"]) == 3
    assert recipients() == desk
    assert dispute_filed_notice_send(dispute_id=dispute["id"]) == 0

    mail.outbox.clear()
    decide(world.officer, dispute["id"], "upheld")
    assert queued("registry.disputes.send_decision_notice", dispute["id"]) == 1
    assert dispute_decision_notice_send(dispute_id=dispute["id"]) == 2
    assert recipients() == {"risk@alice-bank.example", "risk@bob-loans.example"}
    assert dispute_decision_notice_send(dispute_id=dispute["id"]) == 0


def test_it_registers_the_dispute_tasks_under_their_names(world, desk, frozen_now):
    from consortium.celery import app
    from registry.tasks import notifications as tasks

    names = {
        "registry.disputes.sweep_deadlines",
        "registry.disputes.send_reminder",
        "registry.disputes.send_overdue_alert",
        "registry.disputes.send_filed_notice",
        "registry.disputes.send_decision_notice",
    }
    assert names <= set(app.tasks)
    case, _ = listed_case(world)
    dispute = file_dispute(world.bob, case["id"])
    frozen_now.advance(days=21)
    assert tasks.sweep_deadlines.run()["overdue"] == 1
    assert tasks.send_overdue_alert.run(dispute["id"]) == 3


# --- issue 13: filing needs the subject's identifier; a member's disputes are limited -------


def test_it_refuses_a_dispute_from_a_member_that_only_saw_the_case_id(world):
    """bob sees the case id in a lookup answer. Without the subject's identifier (or with any
    other one) he cannot take the case out of lookups."""
    _case, ident = listed_case(world)
    (seen,) = seen_in_lookup(world.bob, ident)
    case_id = seen["case_id"]
    other_phone = identifier("phone", fresh_phone())
    bobs_case, bobs_ident = listed_case(world, world.bob)
    body = {"case_id": case_id, "reason": "not_me", "statement": STATEMENT}

    assert_problem(world.bob.post(DISPUTES, body), 400, "validation_error")
    wrong = [
        other_phone,  # someone else's phone
        bobs_ident,  # an identifier of another case
        {"kind": "imei", "token": ident["token"]},  # the right token under another kind
    ]
    for guess in wrong:
        problem = assert_problem(
            world.bob.post(DISPUTES, {**body, "identifier": guess}), 422, "identifier_not_on_case"
        )
        assert problem["errors"][0]["pointer"] == "/identifier"
        assert guess["token"] not in json.dumps(problem)

    assert not Dispute.objects.exists()
    assert case_status(case_id) == "active" and case_status(bobs_case["id"]) == "active"
    assert statuses_in_lookup(world.carol, ident) == ["active"]
    assert not AuditEvent.objects.filter(action="dispute.filed").exists()


def test_it_gives_the_same_answer_for_a_missing_case_and_a_wrong_identifier(world):
    case, _ident = listed_case(world)
    guess = identifier("phone", fresh_phone())
    missing = "00000000-0000-4000-8000-000000000000"
    answers = [
        world.bob.post(DISPUTES, {"case_id": target, "identifier": guess, "reason": "not_me"})
        for target in (case["id"], missing)
    ]
    bodies = [assert_problem(answer, 422, "identifier_not_on_case") for answer in answers]
    assert bodies[0]["detail"] == bodies[1]["detail"]


def test_it_refuses_a_wrong_identifier_on_a_disputed_case_before_saying_it_is_disputed(world):
    case, _ident = listed_case(world)
    file_dispute(world.bob, case["id"])
    guess = identifier("phone", fresh_phone())
    assert_problem(
        world.carol.post(DISPUTES, dispute_body(case["id"], identifier=guess)),
        422,
        "identifier_not_on_case",
    )
    assert_problem(world.carol.post(DISPUTES, dispute_body(case["id"])), 409, "conflict")


def test_it_accepts_any_identifier_of_the_case_and_records_only_its_kind(world):
    phone = identifier("phone", fresh_phone())
    resident_id = identifier("cn_resident_id", "11010519491231002X")
    case = submit_case(world.alice, identifiers=[phone, resident_id])
    response = world.bob.post(
        DISPUTES, {"case_id": case["id"], "identifier": resident_id, "reason": "not_me"}
    )
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="dispute.filed", object_id=response.json()["id"])
    assert event.details["identifier_kind"] == "cn_resident_id"
    fingerprints = CaseIdentifier.objects.filter(case_id=case["id"]).values_list(
        "fingerprint", flat=True
    )
    assert not any(fp in json.dumps(event.details) for fp in fingerprints)
    assert resident_id["token"] not in json.dumps(event.details)


def test_it_matches_the_identifier_during_a_pepper_rotation(world):
    """A case stored under the old pepper is matched through the same digest path as lookups:
    every configured pepper version, each against the rows of its own version."""

    with peppers(P1):
        case, _ident = listed_case(world)
    with peppers(P1, P2):  # rotated configuration, job not run yet: the row is at version 1
        assert CaseIdentifier.objects.get(case_id=case["id"]).pepper_version == 1
        guess = identifier("phone", fresh_phone())
        assert_problem(
            world.bob.post(DISPUTES, dispute_body(case["id"], identifier=guess)),
            422,
            "identifier_not_on_case",
        )
        assert file_dispute(world.bob, case["id"])["status"] == "open"


def test_it_refuses_disputes_past_the_members_quota_and_alerts_the_officers(
    world, settings, frozen_now
):

    settings.REGISTRY_DISPUTE_QUOTA_PER_DAY = 3
    cases = [listed_case(world) for _ in range(5)]
    for case, _ident in cases[:3]:
        file_dispute(world.bob, case["id"])
    burst, burst_ident = cases[3]
    refused = world.bob.post(DISPUTES, dispute_body(burst["id"]))
    assert_problem(refused, 429, "rate_limited")
    assert 0 < int(refused["Retry-After"]) <= 24 * 3600 + 1
    assert Dispute.objects.filter(filed_by=world.bob.member).count() == 3
    assert case_status(burst["id"]) == "active"
    assert statuses_in_lookup(world.carol, burst_ident) == ["active"]
    # another member's quota is its own
    assert file_dispute(world.carol, cases[4][0]["id"])["status"] == "open"

    # the burst is an officer alert: a refusal event, and bob on the dashboard's panel
    (event,) = AuditEvent.objects.filter(action="rate_limit.exceeded")
    assert event.member_id == world.bob.member.pk
    assert event.details == {
        "scope": "dispute",
        "window": "day",
        "limit": 3,
        "quota": "disputes_filed",
    }
    assert_problem(world.bob.post(DISPUTES, dispute_body(burst["id"])), 429, "rate_limited")
    assert AuditEvent.objects.filter(action="rate_limit.exceeded").count() == 1  # once a day
    officer = verified_client(world.officer.user)
    rows = {row["code"]: row for row in officer.get(ADMIN).context["dashboard"]["throttled"]}
    assert rows["BOB_LOANS"]["scopes"] == "File disputes"
    assert rows["BOB_LOANS"]["day_windows"] == 1 and rows["BOB_LOANS"]["recent"]

    # the quota is over any 24 hours
    frozen_now.advance(hours=24, seconds=1)
    assert file_dispute(world.bob, burst["id"])["status"] == "open"


def test_it_files_ten_disputes_a_day_by_default_unless_the_officers_set_more(world):
    assert Member._meta.get_field("dispute_quota_per_day").null
    cases = [listed_case(world)[0] for _ in range(12)]
    for case in cases[:10]:
        file_dispute(world.bob, case["id"])
    assert_problem(world.bob.post(DISPUTES, dispute_body(cases[10]["id"])), 429, "rate_limited")
    # an officer raises bob's quota on the member's admin page (audited)

    bob = world.bob.member
    officer = verified_client(world.officer.user)
    changed = officer.post(
        f"{ADMIN}registry/member/{bob.pk}/change/",
        {"name": bob.name, "contact_email": bob.contact_email, "dispute_quota_per_day": "11"},
    )
    assert changed.status_code == 302
    (event,) = AuditEvent.objects.filter(action="member.limit_set", object_id=bob.code)
    assert event.details == {"scope": "dispute", "disputes_per_day": 11}
    assert file_dispute(world.bob, cases[10]["id"])["status"] == "open"
    assert_problem(world.bob.post(DISPUTES, dispute_body(cases[11]["id"])), 429, "rate_limited")
    assert case_status(cases[11]["id"]) == "active"


@pytest.mark.django_db(transaction=True)
def test_it_counts_concurrent_filings_of_one_member_against_its_quota(world, settings):
    settings.REGISTRY_DISPUTE_QUOTA_PER_DAY = 2
    cases = [listed_case(world)[0] for _ in range(4)]
    answers = race(*[lambda c=c: world.bob.post(DISPUTES, dispute_body(c["id"])) for c in cases])
    assert sorted(answer.status_code for answer in answers) == [201, 201, 429, 429]
    assert Dispute.objects.filter(filed_by=world.bob.member).count() == 2

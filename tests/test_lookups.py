"""Lookups: matches, reporting members, velocity (loan stacking), logging, bad input."""

import hashlib
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from registry import tokens
from registry.actors import Actor
from registry.models import (
    AuditEvent,
    Case,
    CaseIdentifier,
    Dispute,
    Lookup,
    LookupLogEntry,
    Sighting,
)
from registry.selectors.cases import matchable_cases_q
from registry.services.disputes import dispute_file
from tests.support.api import assert_problem
from tests.support.factories import LOOKUPS, fresh_phone, identifier, lookup, submit_case, token_for

pytestmark = pytest.mark.django_db
ZERO = {"1h": 0, "24h": 0, "7d": 0, "30d": 0, "90d": 0}


def actor_of(party) -> Actor:
    return Actor.for_api_key(party.member.api_keys.get())


def only_result(party, ident, **overrides) -> dict:
    (result,) = lookup(party, [ident], **overrides)["results"]
    return result


def case_ids(result) -> list[str]:
    return [case["case_id"] for case in result["cases"]]


# --- the scenario --------------------------------------------------------------------


def test_it_finds_a_case_by_any_of_its_identifiers_and_counts_other_members(world):
    phone = identifier("phone", "+8613812345678")
    id_card = identifier("cn_resident_id", "11010519491231002X")
    case = submit_case(
        world.alice,
        identifiers=[phone, id_card],
        category="identity_theft",
        confirmed_at="2026-05-04",
    )

    by_phone = only_result(world.bob, phone)
    by_card = only_result(world.bob, id_card)
    for result, ident in ((by_phone, phone), (by_card, id_card)):
        assert result["kind"] == ident["kind"] and result["token"] == ident["token"]
        assert result["matched"] is True
        assert result["cases"] == [
            {
                "case_id": case["id"],
                "category": "identity_theft",
                "confirmed_at": "2026-05-04",
                "status": "active",
                "reported_by_you": False,
                "reporting_members": 1,
                "has_subject_statement": False,
            }
        ]
        assert result["velocity"] == ZERO  # nobody else looked before bob

    # carol sees that one other member (bob) looked this phone up, in every window
    carol = only_result(world.carol, phone)
    assert carol["velocity"] == {"1h": 1, "24h": 1, "7d": 1, "30d": 1, "90d": 1}
    assert case_ids(carol) == [case["id"]]
    # and bob now sees carol (alice, the reporter, never looked it up)
    assert only_result(world.bob, phone)["velocity"]["1h"] == 1


def test_it_does_not_find_a_withdrawn_case(world):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    assert (
        world.alice.post(
            f"/api/v1/cases/{case['id']}/withdraw", {"reason": "retracted"}
        ).status_code
        == 200
    )
    result = only_result(world.bob, ident)
    assert result["matched"] is False and result["cases"] == []


def test_it_does_not_find_a_case_past_its_expiry_before_the_job_ran(world, frozen_now):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    expires = Case.objects.get(pk=case["id"]).expires_at
    frozen_now.set(
        timezone.make_aware(
            timezone.datetime.combine(expires - timedelta(days=1), timezone.datetime.min.time())
        )
    )
    assert only_result(world.bob, ident)["matched"] is True
    frozen_now.advance(days=1)
    assert Case.objects.get(pk=case["id"]).status == "active"  # no job has run
    assert only_result(world.bob, ident)["matched"] is False


def test_it_finds_a_disputed_case_until_its_dispute_is_overdue(world, frozen_now):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    dispute = dispute_file(
        actor=actor_of(world.carol),
        case_id=case["id"],
        identifier=(ident["kind"], ident["token"]),
        reason="not_me",
    )
    result = only_result(world.bob, ident)
    assert [c["status"] for c in result["cases"]] == ["disputed"]
    frozen_now.set(dispute.due_at)  # overdue at this very moment; the job has not run
    assert Dispute.objects.get(pk=dispute.pk).status == "open"
    assert only_result(world.bob, ident)["matched"] is False


def test_it_counts_distinct_reporting_members_and_flags_the_callers_own(world):
    ident = identifier("bank_card", "6222021234567890128")
    mine = submit_case(world.bob, identifiers=[ident])
    alices = [submit_case(world.alice, identifiers=[ident]) for _ in range(2)]
    Case.objects.filter(pk=alices[0]["id"]).update(subject_statement="I repaid in full.")
    result = only_result(world.bob, ident)
    assert sorted(case_ids(result)) == sorted([mine["id"], *(c["id"] for c in alices)])
    assert {c["reporting_members"] for c in result["cases"]} == {2}
    own = {c["case_id"]: c["reported_by_you"] for c in result["cases"]}
    assert own == {mine["id"]: True, alices[0]["id"]: False, alices[1]["id"]: False}
    statements = {c["case_id"]: c["has_subject_statement"] for c in result["cases"]}
    assert statements[alices[0]["id"]] is True and statements[alices[1]["id"]] is False


def test_it_names_the_reporter_only_when_configured(world, settings):
    ident = identifier("email", "victim@example.cn")
    submit_case(world.alice, identifiers=[ident])
    settings.REGISTRY_DISCLOSE_REPORTERS = False
    assert "reported_by" not in only_result(world.bob, ident)["cases"][0]
    settings.REGISTRY_DISCLOSE_REPORTERS = True
    assert only_result(world.bob, ident)["cases"][0]["reported_by"] == "ALICE_BANK"


def test_it_answers_every_identifier_in_order(world):
    hit = identifier("imei", "490154203237518")
    submit_case(world.alice, identifiers=[hit])
    misses = [identifier("phone", fresh_phone()) for _ in range(3)]
    asked = [misses[0], hit, misses[1], hit, misses[2]]
    body = lookup(world.bob, asked)
    assert [(r["kind"], r["token"]) for r in body["results"]] == [
        (i["kind"], i["token"]) for i in asked
    ]
    assert [r["matched"] for r in body["results"]] == [False, True, False, True, False]
    lookup_row = Lookup.objects.get(pk=body["lookup_id"])
    assert (lookup_row.identifier_count, lookup_row.match_count) == (5, 2)
    assert LookupLogEntry.objects.filter(lookup=lookup_row).count() == 4  # distinct ones


# --- velocity ------------------------------------------------------------------------------


def test_it_counts_velocity_per_window_for_matched_and_unmatched_identifiers(world, frozen_now):
    from tests.support.world import make_member

    dave = make_member("DAVE_FINANCE")
    ident = identifier("phone", fresh_phone())  # reported by nobody
    lookup(world.bob, [ident])
    frozen_now.advance(hours=2)
    lookup(world.carol, [ident])
    frozen_now.advance(days=8)
    lookup(dave, [ident])
    frozen_now.advance(minutes=30)
    # bob 8 d 2.5 h ago, carol 8 d 0.5 h ago, dave 30 min ago
    assert only_result(world.alice, ident)["velocity"] == {
        "1h": 1,
        "24h": 1,
        "7d": 1,
        "30d": 3,
        "90d": 3,
    }
    frozen_now.advance(days=25)
    assert only_result(world.alice, ident)["velocity"] == {
        "1h": 0,
        "24h": 0,
        "7d": 0,
        "30d": 1,
        "90d": 3,
    }
    frozen_now.advance(days=70)
    assert only_result(world.alice, ident)["velocity"] == ZERO


def test_it_counts_a_member_looking_twice_once_and_never_the_caller(world, frozen_now):
    ident = identifier("phone", fresh_phone())
    for _ in range(3):
        lookup(world.bob, [ident])
        frozen_now.advance(minutes=5)
    lookup(world.carol, [ident, ident])
    assert only_result(world.carol, ident)["velocity"]["1h"] == 1  # bob, three times
    assert only_result(world.bob, ident)["velocity"]["1h"] == 1  # carol; bob is not counted
    assert Sighting.objects.filter(member=world.bob.member).count() == 1


def test_it_counts_velocity_before_this_lookup(world):
    ident = identifier("phone", fresh_phone())
    first = only_result(world.bob, ident)
    assert first["velocity"] == ZERO
    assert only_result(world.carol, ident)["velocity"]["1h"] == 1


def test_it_keeps_the_latest_sighting_when_clocks_disagree(world, frozen_now):
    ident = identifier("phone", fresh_phone())
    lookup(world.bob, [ident])
    latest = Sighting.objects.get(member=world.bob.member).last_seen_at
    frozen_now.advance(hours=-3)  # a lookup stamped earlier commits later
    lookup(world.bob, [ident])
    assert Sighting.objects.get(member=world.bob.member).last_seen_at == latest


# --- logging and audit -----------------------------------------------------------------------


def test_it_logs_each_lookup_with_member_time_purpose_and_digests(world):
    idents = [identifier("phone", fresh_phone()), identifier("email", "x@y.example")]
    body = lookup(world.bob, idents, purpose="credit_review", consent_reference="CONSENT-77")
    row = Lookup.objects.get(pk=body["lookup_id"])
    assert row.member == world.bob.member and row.purpose == "credit_review"
    assert row.consent_reference == "CONSENT-77"
    assert row.api_key.member == world.bob.member
    assert abs((timezone.now() - row.created_at).total_seconds()) < 60
    entries = LookupLogEntry.objects.filter(lookup=row)
    assert {(e.kind, bytes(e.digest)) for e in entries} == {
        (i["kind"], tokens.digest_and_fingerprint(i["token"])[0]) for i in idents
    }
    assert {e.member_id for e in entries} == {world.bob.member.pk}
    (event,) = AuditEvent.objects.filter(action="lookup.performed")
    assert event.object_id == body["lookup_id"] and event.member_id == world.bob.member.pk
    assert event.details["identifiers"] == 2 and event.details["matched"] == 0
    assert all(i["token"] not in str(event.details) for i in idents)


def test_it_needs_the_lookup_scope(db):
    from tests.support.world import make_member

    submitter = make_member("SUBMIT_ONLY", scopes=["submit"])
    response = submitter.post(
        LOOKUPS,
        {"purpose": "loan_application", "identifiers": [identifier("phone", fresh_phone())]},
    )
    assert_problem(response, 403, "forbidden_scope")
    assert not Lookup.objects.exists()


# --- bad input -------------------------------------------------------------------------------


def nothing_logged() -> bool:
    return not (
        Lookup.objects.exists()
        or LookupLogEntry.objects.exists()
        or Sighting.objects.exists()
        or AuditEvent.objects.filter(action="lookup.performed").exists()
    )


def test_it_refuses_more_than_1000_identifiers(world):
    idents = [{"kind": "phone", "token": "ab" * 64}] * 1001
    body = assert_problem(
        world.bob.post(LOOKUPS, {"purpose": "loan_application", "identifiers": idents}),
        400,
        "batch_too_large",
    )
    assert body["errors"][0]["pointer"] == "/identifiers"
    assert nothing_logged()
    assert lookup(world.bob, idents[:1000])["results"][999]["matched"] is False


@pytest.mark.parametrize(
    "identifiers,pointer,code",
    [
        ([{"kind": "fax", "token": "ab" * 64}], "/identifiers/0/kind", "unknown_kind"),
        ([{"kind": "phone", "token": "ab" * 63}], "/identifiers/0/token", "invalid_token"),
        ([{"kind": "phone"}], "/identifiers/0/token", "required"),
        (["ab" * 64], "/identifiers/0", "invalid"),
        ([], "/identifiers", "empty"),
        ("phone", "/identifiers", "not_a_list"),
    ],
)
def test_it_refuses_bad_identifiers(world, identifiers, pointer, code):
    response = world.bob.post(LOOKUPS, {"purpose": "loan_application", "identifiers": identifiers})
    body = assert_problem(response, 400, "validation_error")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [(pointer, code)]
    assert nothing_logged()


@pytest.mark.parametrize("purpose", ["marketing", "", None])
def test_it_refuses_an_unknown_purpose(world, purpose):
    body = {"purpose": purpose, "identifiers": [identifier("phone", fresh_phone())]}
    response = assert_problem(world.bob.post(LOOKUPS, body), 400, "validation_error")
    assert response["errors"][0]["pointer"] == "/purpose"
    assert "marketing" not in str(response)
    assert nothing_logged()


# --- semantics and pepper rotation ---------------------------------------------------------


def test_it_matches_exactly_what_matchable_cases_q_allows(world, frozen_now):
    """The hand-written lookup SQL and the ORM rule agree on every kind of case."""
    ident = identifier("phone", fresh_phone())
    cases = {
        name: submit_case(world.alice, identifiers=[ident])["id"]
        for name in ("active", "disputed", "overdue", "expired_by_date", "responded_late")
    }
    Case.objects.filter(pk=cases["expired_by_date"]).update(
        confirmed_at=timezone.localdate() - timedelta(days=30), expires_at=timezone.localdate()
    )
    carol = actor_of(world.carol)
    for name in ("disputed", "overdue", "responded_late"):
        dispute_file(
            actor=carol,
            case_id=cases[name],
            identifier=(ident["kind"], ident["token"]),
            reason="other",
        )
    Dispute.objects.filter(case_id=cases["overdue"]).update(status="overdue")
    Dispute.objects.filter(case_id=cases["responded_late"]).update(
        status="responded", due_at=timezone.now() - timedelta(minutes=1)
    )
    expected = set(
        Case.objects.filter(
            matchable_cases_q(),
            Q(identifiers__digest=tokens.digest_and_fingerprint(ident["token"])[0]),
        ).values_list("pk", flat=True)
    )
    assert {str(pk) for pk in expected} == {cases["active"], cases["disputed"]}
    assert set(case_ids(only_result(world.bob, ident))) == {str(pk) for pk in expected}


def test_it_matches_rows_at_the_previous_pepper_during_a_rotation(world, settings):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    lookup(world.carol, [ident])  # a sighting at version 1
    before = settings.REGISTRY_PREVIOUS_PEPPERS, settings.REGISTRY_PEPPER
    try:
        settings.REGISTRY_PREVIOUS_PEPPERS = [before[1]]
        settings.REGISTRY_PEPPER = "33" * 32
        tokens.configured_peppers.cache_clear()
        assert tokens.current_pepper_version() == 2
        assert CaseIdentifier.objects.get(case_id=case["id"]).pepper_version == 1
        result = only_result(world.bob, ident)
        assert case_ids(result) == [case["id"]]
        assert result["velocity"]["1h"] == 1  # carol's sighting at version 1
        entry = LookupLogEntry.objects.filter(member=world.bob.member).get()
        assert entry.pepper_version == 2
        assert bytes(entry.digest) == tokens.digest_layers(ident["token"])[1]
        # once the rotation job moved the rows to version 2, they still match
        row = CaseIdentifier.objects.get(case_id=case["id"])
        CaseIdentifier.objects.filter(pk=row.pk).update(
            digest=tokens.rotate_digest(bytes(row.digest), 2), pepper_version=2
        )
        assert case_ids(only_result(world.bob, ident)) == [case["id"]]
    finally:
        settings.REGISTRY_PREVIOUS_PEPPERS, settings.REGISTRY_PEPPER = before
        tokens.configured_peppers.cache_clear()


def test_it_uses_real_tokens_that_differ_by_kind(world):
    # The OPRF input carries the kind: the same digits as two kinds are two tokens.
    assert token_for("imei", "490154203237518") != token_for("bank_card", "490154203237518")
    submit_case(world.alice, identifiers=[identifier("imei", "490154203237518")])
    assert only_result(world.bob, identifier("bank_card", "490154203237518"))["matched"] is False


def test_it_refuses_bad_identifiers_in_the_service_too(world):
    from registry.errors import ValidationFailed
    from registry.services.lookups import lookup_perform

    with pytest.raises(ValidationFailed) as refused:
        lookup_perform(
            actor=actor_of(world.bob),
            purpose="loan_application",
            identifiers=[("phone", "ab" * 64), ("fax", "ab" * 64), ("phone", "zz")],
        )
    assert [e.pointer for e in refused.value.errors] == ["/identifiers/1", "/identifiers/2"]
    assert nothing_logged()


def test_it_reports_database_errors_of_raw_sql_as_django_errors(db):
    from django.db import ProgrammingError

    from registry.sql import execute_binary

    with pytest.raises(ProgrammingError):
        execute_binary("SELECT no_such_column FROM registry_case", {})


# --- one statement ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 400])
def test_it_looks_up_and_records_in_one_statement_whatever_the_size(world, monkeypatch, size):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import registry.sql
    from registry.services.lookups import lookup_perform

    statements = []
    execute = registry.sql._execute
    monkeypatch.setattr(
        registry.sql, "_execute", lambda *args: statements.append(args[0]) or execute(*args)
    )
    identifiers = [("phone", tokens_of(n)) for n in range(size)]
    bob = actor_of(world.bob)
    with CaptureQueriesContext(connection) as orm_queries:
        outcome = lookup_perform(actor=bob, purpose="loan_application", identifiers=identifiers)
    assert len(outcome.results) == size
    assert len(statements) == 1 and not orm_queries.captured_queries
    assert LookupLogEntry.objects.count() == Sighting.objects.count() == size


@pytest.mark.django_db(transaction=True)
def test_it_writes_nothing_when_any_part_of_a_lookup_fails():
    """A lookup runs outside any transaction of its own: its one statement is atomic. Make its
    last write (the sighting upsert) fail, and the Lookup row, the log rows and the audit
    event written before it in the same statement are gone too."""
    from django.db import DatabaseError, connection

    from registry.services.lookups import lookup_perform
    from tests.support.world import make_world

    world = make_world()
    submit_case(world.alice, identifiers=[phone := identifier("phone", fresh_phone())])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_sighting BEFORE INSERT ON registry_sighting "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
        )
    try:
        with pytest.raises(DatabaseError, match="refused by the test"):
            lookup_perform(
                actor=actor_of(world.bob),
                purpose="loan_application",
                identifiers=[(phone["kind"], phone["token"])],
            )
        assert nothing_logged()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse_sighting ON registry_sighting")
            cursor.execute("DROP FUNCTION test_refuse()")
    assert only_result(world.bob, phone)["matched"] is True
    assert Lookup.objects.get().match_count == 1
    assert AuditEvent.objects.get(action="lookup.performed").details["matched"] == 1


def test_it_counts_repeated_identifiers_in_the_lookups_match_count(world):
    submit_case(world.alice, identifiers=[phone := identifier("phone", fresh_phone())])
    other = identifier("phone", fresh_phone())
    lookup(world.bob, [phone, other, phone])
    row = Lookup.objects.get()
    assert (row.identifier_count, row.match_count) == (3, 2)
    event = AuditEvent.objects.get(action="lookup.performed")
    assert event.details == {
        "purpose": "loan_application",
        "identifiers": 3,
        "distinct_identifiers": 2,
        "matched": 2,
        "consent_reference": False,
    }


def tokens_of(n: int) -> str:
    return hashlib.sha512(b"%d" % n).hexdigest()

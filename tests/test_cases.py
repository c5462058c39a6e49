"""Cases: submit one or a batch, list and read one's own, withdraw, categories, idempotency."""

import threading
from datetime import date, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from registry import tokens
from registry.actors import Actor
from registry.errors import NotFound, ValidationFailed
from registry.models import AuditEvent, Case, CaseIdentifier, Category, IdempotencyKey
from registry.services.cases import NewCase, case_submit
from registry.services.categories import category_set_retention
from registry.services.disputes import dispute_file
from registry.services.idempotency import idempotency_keys_purge
from tests.support.api import assert_problem
from tests.support.factories import (
    CASES,
    case_payload,
    fresh_phone,
    identifier,
    submit_case,
    token_for,
)
from tests.support.world import make_world, race

pytestmark = pytest.mark.django_db
BATCH = "/api/v1/cases/batch"


def case_url(case_id) -> str:
    return f"{CASES}/{case_id}"


def withdraw(party, case_id, reason="Evidence retracted by the fraud team"):
    return party.post(f"{CASES}/{case_id}/withdraw", {"reason": reason})


def nothing_written() -> bool:
    return (
        not Case.objects.exists()
        and not CaseIdentifier.objects.exists()
        and not (AuditEvent.objects.filter(action="case.submitted").exists())
    )


def only_error(response, status: int, code: str, pointer: str, item_code: str) -> dict:
    body = assert_problem(response, status, code)
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [(pointer, item_code)], body
    return body


# --- submitting one case -----------------------------------------------------------------------


def test_it_creates_a_case_in_the_contract_shape(world):
    phone = identifier("phone", fresh_phone())
    card = identifier("cn_resident_id", "11010519491231002X")
    payload = case_payload(
        reference="ALICE-2026-0042",
        category="money_mule",
        confirmed_at="2026-01-10",
        identifiers=[phone, card],
    )
    response = world.alice.post(CASES, payload)
    assert response.status_code == 201, response.content
    case = response.json()
    assert set(case) == {
        "id",
        "reference",
        "category",
        "status",
        "confirmed_at",
        "expires_at",
        "created_at",
        "identifiers",
    }
    assert case["reference"] == "ALICE-2026-0042" and case["category"] == "money_mule"
    assert case["status"] == "active" and case["confirmed_at"] == "2026-01-10"
    assert case["expires_at"] == (date(2026, 1, 10) + timedelta(days=1826)).isoformat()
    assert "+08:00" in case["created_at"] or case["created_at"].endswith("Z")
    expected = [
        {"kind": i["kind"], "fingerprint": tokens.digest_and_fingerprint(i["token"])[1]}
        for i in (phone, card)
    ]
    assert case["identifiers"] == expected
    assert phone["token"] not in response.content.decode()


def test_it_stores_digests_never_tokens(world):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    row = CaseIdentifier.objects.get(case_id=case["id"])
    assert bytes(row.digest) == tokens.digest_and_fingerprint(ident["token"])[0]
    assert row.pepper_version == tokens.current_pepper_version()
    event = AuditEvent.objects.get(action="case.submitted", object_id=case["id"])
    assert event.member_id == world.alice.member.pk
    # a count and the kinds: a fingerprint in the permanent trail would outlive the case
    assert event.details["identifiers"] == 1 and event.details["identifier_kinds"] == ["phone"]
    assert row.fingerprint not in str(event.details)
    assert ident["token"] not in str(event.details)
    assert not tables_holding(ident["token"])


def tables_holding(token: str) -> list[str]:
    """Every registry table with a text, JSON or binary column that contains the token (as
    hex text or as its 64 raw bytes)."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name LIKE 'registry_%%' "
            "AND data_type IN ('text', 'character varying', 'jsonb', 'bytea')"
        )
        for table, column, data_type in cursor.fetchall():
            if data_type == "bytea":
                test = f'position(%s::bytea in "{column}") > 0'
                value = bytes.fromhex(token)
            else:
                test = f'strpos("{column}"::text, %s) > 0'
                value = token
            cursor.execute(f'SELECT 1 FROM "{table}" WHERE {test} LIMIT 1', [value])  # noqa: S608
            if cursor.fetchone():
                found.append(f"{table}.{column}")
    return found


def test_it_computes_expiry_from_the_category_retention(world):
    category_set_retention(actor=Actor.system(), category="forged_documents", retention_days=30)
    confirmed = timezone.localdate() - timedelta(days=5)
    case = submit_case(world.alice, category="forged_documents", confirmed_at=confirmed.isoformat())
    assert case["expires_at"] == (confirmed + timedelta(days=30)).isoformat()


def test_it_refuses_an_unknown_kind(world):
    ident = {"kind": "passport", "token": token_for("phone", fresh_phone())}
    response = world.alice.post(CASES, case_payload(identifiers=[ident]))
    only_error(response, 400, "validation_error", "/identifiers/0/kind", "unknown_kind")
    assert nothing_written()


def test_it_refuses_an_unknown_category(world):
    response = world.alice.post(CASES, case_payload(category="shoplifting"))
    only_error(response, 400, "validation_error", "/category", "unknown_category")
    assert nothing_written()


@pytest.mark.parametrize(
    "bad", ["ab" * 63, "AB" * 64, "g" * 128, "a" * 127, 42, None, " " + "a" * 127]
)
def test_it_refuses_a_malformed_token(world, bad):
    idents = [identifier("phone", fresh_phone()), {"kind": "phone", "token": bad}]
    response = world.alice.post(CASES, case_payload(identifiers=idents))
    only_error(response, 400, "validation_error", "/identifiers/1/token", "invalid_token")
    assert nothing_written()


def test_it_refuses_a_token_twice_in_one_case(world):
    ident = identifier("phone", fresh_phone())
    idents = [ident, identifier("email", "a@b.example"), dict(ident)]
    response = world.alice.post(CASES, case_payload(identifiers=idents))
    only_error(response, 400, "validation_error", "/identifiers/2/token", "duplicate_token")
    assert nothing_written()


def test_it_refuses_more_than_20_identifiers(world):
    idents = [identifier("phone", fresh_phone()) for _ in range(21)]
    response = world.alice.post(CASES, case_payload(identifiers=idents))
    only_error(response, 400, "validation_error", "/identifiers", "too_many_identifiers")
    assert nothing_written()
    assert world.alice.post(CASES, case_payload(identifiers=idents[:20])).status_code == 201


def test_it_refuses_a_case_without_identifiers(world):
    response = world.alice.post(CASES, case_payload(identifiers=[]))
    only_error(response, 400, "validation_error", "/identifiers", "empty")
    assert nothing_written()


def test_it_refuses_a_future_confirmation_date(world, frozen_now):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = world.alice.post(CASES, case_payload(confirmed_at=tomorrow))
    only_error(response, 400, "validation_error", "/confirmed_at", "in_future")
    assert nothing_written()
    today = timezone.localdate().isoformat()
    assert world.alice.post(CASES, case_payload(confirmed_at=today)).status_code == 201


def test_it_refuses_a_case_already_past_its_retention(world):
    long_ago = (timezone.localdate() - timedelta(days=1826)).isoformat()
    response = world.alice.post(CASES, case_payload(confirmed_at=long_ago))
    only_error(response, 400, "validation_error", "/confirmed_at", "past_retention")


@pytest.mark.parametrize("attestation", [False, "true", 1, None])
def test_it_refuses_anything_but_a_true_attestation(world, attestation):
    response = world.alice.post(CASES, case_payload(attestation=attestation))
    only_error(response, 400, "validation_error", "/attestation", "attestation_required")
    assert nothing_written()


def test_it_refuses_a_missing_attestation(world):
    payload = case_payload()
    del payload["attestation"]
    only_error(
        world.alice.post(CASES, payload), 400, "validation_error", "/attestation", "required"
    )
    assert nothing_written()


@pytest.mark.parametrize("body", [[], "case", {"reference": 5}, {}])
def test_it_answers_malformed_bodies_with_problems(world, body):
    assert_problem(world.alice.post(CASES, body), 400, "validation_error")
    assert nothing_written()


def test_it_needs_the_submit_scope(db):
    from tests.support.world import make_member

    looker = make_member("LOOK_ONLY", scopes=["lookup"])
    assert_problem(looker.post(CASES, case_payload()), 403, "forbidden_scope")
    assert_problem(looker.get(CASES), 403, "forbidden_scope")
    assert nothing_written()


# --- references ----------------------------------------------------------------------------


def test_it_keeps_a_reference_unique_among_live_cases(world):
    first = submit_case(world.alice, reference="REF-1")
    body = assert_problem(world.alice.post(CASES, case_payload(reference="REF-1")), 409, "conflict")
    assert body["errors"][0]["pointer"] == "/reference"
    # Another member may use the same reference; a withdrawn case frees it.
    submit_case(world.bob, reference="REF-1")
    assert withdraw(world.alice, first["id"]).status_code == 200
    second = submit_case(world.alice, reference="REF-1")
    assert second["id"] != first["id"]


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_two_concurrent_submissions_of_a_reference_win():
    world = make_world()
    for round_ in range(4):
        reference = f"RACE-{round_}"
        responses = race(
            *[
                lambda ref=reference: world.alice.post(CASES, case_payload(reference=ref))
                for _ in range(2)
            ]
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [
            r.content for r in responses
        ]
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json()["code"] == "conflict"
        assert Case.objects.filter(reference=reference).count() == 1
        assert CaseIdentifier.objects.filter(case__reference=reference).count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_refuses_the_second_inserter_that_waited_on_the_first():
    """Deterministic version of the race: the first transaction has inserted but not
    committed when the second one (which cannot see it) inserts the same reference and
    waits on the unique index; once the first commits, the second gets a conflict."""
    from django.db import transaction

    world = make_world()
    actor = Actor.for_api_key(world.alice.member.api_keys.get())
    new_case = NewCase(
        reference="HELD",
        category="identity_theft",
        confirmed_at=timezone.localdate(),
        identifiers=[("phone", token_for("phone", fresh_phone()))],
    )
    inserted, release, outcome = threading.Event(), threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                case_submit(actor=actor, case=new_case)
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    def second():
        try:
            outcome["pid"] = connection.cursor().connection.info.backend_pid
            try:
                case_submit(actor=actor, case=new_case)
                outcome["result"] = "created"
            except Exception as exc:  # noqa: BLE001 - the assertion names it
                outcome["result"] = type(exc).__name__
        finally:
            connection.close()

    holder = threading.Thread(target=first)
    holder.start()
    assert inserted.wait(30)
    waiter = threading.Thread(target=second)
    waiter.start()
    _wait_until_blocked(lambda: outcome.get("pid"))
    release.set()
    holder.join()
    waiter.join()
    assert outcome["result"] == "Conflict"
    assert Case.objects.filter(reference="HELD").count() == 1


def _wait_until_blocked(pid_of, timeout: float = 30.0) -> None:
    """Poll pg_stat_activity until the backend is waiting on a lock (no fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            pid = pid_of()
            if pid:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
                row = cursor.fetchone()
                if row and row[0] == "Lock":
                    return
            time.sleep(0.01)
    raise AssertionError("the second insert never waited on the first")


# --- idempotency ---------------------------------------------------------------------------


def test_it_replays_the_first_answer_for_a_repeated_key(world):
    payload = case_payload()
    first = world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-1")
    again = world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Case.objects.count() == 1
    assert AuditEvent.objects.filter(action="case.submitted").count() == 1
    assert AuditEvent.objects.filter(action="idempotency.replayed").count() == 1


def test_it_refuses_a_repeated_key_with_another_body(world):
    world.alice.post(CASES, case_payload(reference="A"), HTTP_IDEMPOTENCY_KEY="k-2")
    response = world.alice.post(CASES, case_payload(reference="B"), HTTP_IDEMPOTENCY_KEY="k-2")
    assert_problem(response, 422, "idempotency_mismatch")
    assert list(Case.objects.values_list("reference", flat=True)) == ["A"]


def test_it_keeps_keys_per_member(world):
    payload = case_payload()
    mine = world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="shared")
    theirs = world.bob.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="shared")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert not theirs.has_header("Idempotent-Replayed")


def test_it_does_not_remember_a_failed_request(world):
    payload = case_payload(category="nope")
    assert world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 400
    assert not IdempotencyKey.objects.exists()
    payload["category"] = "identity_theft"
    assert world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 201


def test_it_keeps_keys_at_least_a_day_then_purges_them(world, frozen_now, settings):
    settings.REGISTRY_IDEMPOTENCY_TTL_HOURS = 48
    payload = case_payload()
    world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-4")
    frozen_now.advance(hours=23)
    assert idempotency_keys_purge(older_than=timedelta(hours=1)) == 0  # never under 24 h
    frozen_now.advance(hours=24)
    assert idempotency_keys_purge() == 0
    replay = world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="k-4")
    assert replay["Idempotent-Replayed"] == "true"
    frozen_now.advance(hours=2)
    assert idempotency_keys_purge() == 1
    assert not IdempotencyKey.objects.exists()


def test_it_refuses_an_unusable_key(world):
    response = world.alice.post(CASES, case_payload(), HTTP_IDEMPOTENCY_KEY="x" * 201)
    assert_problem(response, 400, "validation_error")
    response = world.alice.post(CASES, case_payload(), HTTP_IDEMPOTENCY_KEY="13812345678")
    assert_problem(response, 400, "raw_pii_rejected")
    assert "13812345678" not in response.content.decode()
    assert nothing_written() and not IdempotencyKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_runs_concurrent_requests_with_one_key_once():
    world = make_world()
    payload = case_payload()
    responses = race(
        *[lambda: world.alice.post(CASES, payload, HTTP_IDEMPOTENCY_KEY="same") for _ in range(3)]
    )
    assert [r.status_code for r in responses] == [201, 201, 201], [r.content for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 2
    assert Case.objects.count() == 1


# --- batches -------------------------------------------------------------------------------


def test_it_takes_a_batch_and_answers_each_case_in_order(world):
    good = case_payload(reference="B-1")
    bad_token = case_payload(reference="B-2")
    bad_token["identifiers"].append({"kind": "phone", "token": "zz"})
    bad_category = case_payload(reference="B-3", category="nope")
    dup_in_batch = case_payload(reference="B-1")
    also_good = case_payload(reference="B-5")
    response = world.alice.post(
        BATCH, {"cases": [good, bad_token, bad_category, dup_in_batch, also_good]}
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == ["created", "error", "error", "error", "created"]
    assert results[0]["case"]["reference"] == "B-1" and results[4]["case"]["reference"] == "B-5"
    assert results[1]["error"]["code"] == "validation_error"
    assert [e["pointer"] for e in results[1]["error"]["errors"]] == ["/cases/1/identifiers/1/token"]
    assert results[2]["error"]["errors"][0]["pointer"] == "/cases/2/category"
    assert results[3]["error"]["code"] == "conflict" and results[3]["error"]["status"] == 409
    assert set(Case.objects.values_list("reference", flat=True)) == {"B-1", "B-5"}
    assert CaseIdentifier.objects.count() == 2
    assert AuditEvent.objects.filter(action="case.submitted").count() == 2


def test_it_reports_raw_identifiers_in_a_batch_per_case(world):
    raw = case_payload()
    raw["identifiers"] = [{"kind": "phone", "token": "13812345678"}]
    response = world.alice.post(BATCH, {"cases": [case_payload(), raw]})
    error = response.json()["results"][1]["error"]
    assert error["code"] == "raw_pii_rejected"
    assert error["errors"][0]["pointer"] == "/cases/1/identifiers/0/token"
    assert "13812345678" not in response.content.decode()
    assert Case.objects.count() == 1


def test_it_refuses_a_batch_above_500(world):
    cases = [case_payload(identifiers=[{"kind": "phone", "token": "a" * 128}]) for _ in range(501)]
    assert_problem(world.alice.post(BATCH, {"cases": cases}), 400, "batch_too_large")
    assert nothing_written()


@pytest.mark.parametrize("body", [{}, {"cases": []}, {"cases": "x"}, []])
def test_it_refuses_a_malformed_batch(world, body):
    assert_problem(world.alice.post(BATCH, body), 400, "validation_error")


def test_it_takes_a_full_batch_of_500_cases_with_20_identifiers(world):
    # Synthetic tokens (random hex) keep this fast; the registry cannot tell them apart.
    import secrets

    cases = [
        case_payload(
            identifiers=[{"kind": "imei", "token": secrets.token_hex(64)} for _ in range(20)]
        )
        for _ in range(500)
    ]
    response = world.alice.post(BATCH, {"cases": cases}, HTTP_IDEMPOTENCY_KEY="big")
    assert response.status_code == 200, response.content[:500]
    assert {r["status"] for r in response.json()["results"]} == {"created"}
    assert Case.objects.count() == 500 and CaseIdentifier.objects.count() == 10_000
    replay = world.alice.post(BATCH, {"cases": cases}, HTTP_IDEMPOTENCY_KEY="big")
    assert replay.json() == response.json() and Case.objects.count() == 500


def test_it_replays_a_batch_and_refuses_the_key_on_another_endpoint(world):
    body = {"cases": [case_payload()]}
    first = world.alice.post(BATCH, body, HTTP_IDEMPOTENCY_KEY="b-1")
    assert world.alice.post(BATCH, body, HTTP_IDEMPOTENCY_KEY="b-1").json() == first.json()
    other = world.alice.post(CASES, body["cases"][0], HTTP_IDEMPOTENCY_KEY="b-1")
    assert_problem(other, 422, "idempotency_mismatch")


# --- listing and reading -------------------------------------------------------------------


def test_it_lists_own_cases_newest_first_with_a_cursor(world, frozen_now):
    made = []
    for _ in range(5):
        made.append(submit_case(world.alice)["id"])
        frozen_now.advance(seconds=1)
    submit_case(world.bob)
    seen, url = [], f"{CASES}?page_size=2"
    while url:
        page = world.alice.get(url)
        assert page.status_code == 200, page.content
        seen.extend(case["id"] for case in page.json()["results"])
        url = page.json()["next"]
    assert seen == list(reversed(made))


def test_it_filters_the_list(world):
    kept = submit_case(world.alice, reference="KEEP", category="money_mule")
    gone = submit_case(world.alice, reference="GONE")
    withdraw(world.alice, gone["id"])

    def ids(query):
        response = world.alice.get(f"{CASES}?{query}")
        assert response.status_code == 200, response.content
        return [case["id"] for case in response.json()["results"]]

    assert ids("status=withdrawn") == [gone["id"]]
    assert ids("status=active") == [kept["id"]]
    assert ids("category=money_mule") == [kept["id"]]
    assert ids("reference=GONE") == [gone["id"]]
    assert ids("reference=KEEP&status=withdrawn") == []


@pytest.mark.parametrize(
    "query,pointer", [("status=sleeping", "/status"), ("category=nope", "/category")]
)
def test_it_refuses_unknown_filter_values(world, query, pointer):
    body = assert_problem(world.alice.get(f"{CASES}?{query}"), 400, "validation_error")
    assert body["errors"][0]["pointer"] == pointer
    assert "sleeping" not in body["detail"] + str(body["errors"])


def test_it_reads_one_own_case(world):
    case = submit_case(world.alice)
    response = world.alice.get(case_url(case["id"]))
    assert response.status_code == 200 and response.json() == case
    assert AuditEvent.objects.filter(action="case.viewed", object_id=case["id"]).exists()


def test_it_answers_404_for_a_case_that_does_not_exist(world):
    import uuid

    assert_problem(world.alice.get(case_url(uuid.uuid4())), 404, "not_found")
    assert_problem(world.alice.get(f"{CASES}/not-a-uuid"), 404, "not_found")


# --- withdrawing -----------------------------------------------------------------------------


def test_it_withdraws_a_case_and_purges_its_identifiers(world):
    case = submit_case(
        world.alice,
        identifiers=[identifier("phone", fresh_phone()), identifier("email", "w@x.example")],
    )
    response = withdraw(world.alice, case["id"])
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "withdrawn" and response.json()["identifiers"] == []
    assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()
    event = AuditEvent.objects.get(action="case.withdrawn", object_id=case["id"])
    assert event.details["identifiers_purged"] == 2
    assert "Evidence" not in str(event.details)  # free text: its length only
    again = withdraw(world.alice, case["id"])
    assert_problem(again, 409, "invalid_transition")


def test_it_needs_a_reason_to_withdraw(world):
    case = submit_case(world.alice)
    only_error(
        world.alice.post(f"{CASES}/{case['id']}/withdraw", {}),
        400,
        "validation_error",
        "/reason",
        "required",
    )
    assert Case.objects.get(pk=case["id"]).status == "active"


def test_it_withdraws_a_disputed_case_and_upholds_its_dispute(world):
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, identifiers=[ident])
    bob = Actor.for_api_key(world.bob.member.api_keys.get())
    dispute = dispute_file(
        actor=bob, case_id=case["id"], identifier=(ident["kind"], ident["token"]), reason="not_me"
    )
    assert withdraw(world.alice, case["id"]).status_code == 200
    dispute.refresh_from_db()
    assert dispute.status == "upheld"
    assert Case.objects.get(pk=case["id"]).status == "withdrawn"


def test_it_refuses_to_withdraw_an_expired_or_removed_case(world):
    case = submit_case(world.alice)
    Case.objects.filter(pk=case["id"]).update(status="expired")
    assert_problem(withdraw(world.alice, case["id"]), 409, "invalid_transition")


# --- categories ----------------------------------------------------------------------------


def test_it_redates_live_cases_when_retention_changes(world):
    officer = Actor.for_officer(world.officer.user)
    live = submit_case(world.alice, category="account_takeover", confirmed_at="2026-02-01")
    disputed = submit_case(world.bob, category="account_takeover", confirmed_at="2026-02-02")
    Case.objects.filter(pk=disputed["id"]).update(status="disputed")
    gone = submit_case(world.alice, category="account_takeover", confirmed_at="2026-02-01")
    withdraw(world.alice, gone["id"])
    other = submit_case(world.alice, category="money_mule", confirmed_at="2026-02-01")

    assert (
        category_set_retention(actor=officer, category="account_takeover", retention_days=365) == 2
    )

    def expiry(case):
        return Case.objects.get(pk=case["id"]).expires_at

    assert expiry(live) == date(2027, 2, 1) and expiry(disputed) == date(2027, 2, 2)
    assert expiry(gone) == date(2026, 2, 1) + timedelta(days=1826)
    assert expiry(other) == date(2026, 2, 1) + timedelta(days=1826)
    assert Category.objects.get(pk="account_takeover").retention_days == 365
    event = AuditEvent.objects.get(action="category.retention_changed")
    assert event.details == {"from_days": 1826, "to_days": 365, "cases_redated": 2}
    assert event.officer == world.officer.user.username


@pytest.mark.parametrize("days", [0, 1828, -5])
def test_it_refuses_a_retention_out_of_range(world, days):
    with pytest.raises(ValidationFailed):
        category_set_retention(actor=Actor.system(), category="money_mule", retention_days=days)
    assert Category.objects.get(pk="money_mule").retention_days == 1826


def test_it_lets_no_member_change_a_retention(world):
    with pytest.raises(NotFound):
        category_set_retention(
            actor=Actor.for_api_key(world.alice.member.api_keys.get()),
            category="money_mule",
            retention_days=30,
        )


# --- isolation -----------------------------------------------------------------------------


def test_it_never_shows_another_members_case_through_any_endpoint(world, settings):
    settings.REGISTRY_DISCLOSE_REPORTERS = False
    ident = identifier("phone", fresh_phone())
    case = submit_case(world.alice, reference="SECRET-REF", identifiers=[ident])
    case_id = case["id"]

    # read, withdraw: 404 exactly like a case that does not exist
    missing = "00000000-0000-4000-8000-000000000000"
    for target in (case_id, missing):
        assert_problem(world.bob.get(case_url(target)), 404, "not_found")
        assert_problem(withdraw(world.bob, target), 404, "not_found")
    assert (
        world.bob.get(case_url(case_id)).json()["detail"]
        == (world.bob.get(case_url(missing)).json()["detail"])
    )
    # list, with and without a filter on its reference
    for query in ("", "?reference=SECRET-REF", "?status=active"):
        assert world.bob.get(CASES + query).json()["results"] == []
    # an idempotency key alice used replays nothing for bob
    world.alice.post(CASES, case_payload(), HTTP_IDEMPOTENCY_KEY="alice-key")
    assert not world.bob.post(CASES, case_payload(), HTTP_IDEMPOTENCY_KEY="alice-key").has_header(
        "Idempotent-Replayed"
    )
    # a lookup finds the case but never names its reporter or its reference
    found = world.bob.post(
        "/api/v1/lookups", {"purpose": "loan_application", "identifiers": [ident]}
    )
    assert found.status_code == 200
    text = found.content.decode()
    assert case_id in text and '"reported_by_you":false' in text.replace(" ", "")
    for secret in ("ALICE_BANK", "Alice Bank", "SECRET-REF", 'reported_by"'):
        assert secret not in text
    # a dispute bob files about it names neither the reporter nor its reference, and bob
    # cannot withdraw the case through the dispute either
    filed = world.bob.post(
        "/api/v1/disputes", {"case_id": case_id, "identifier": ident, "reason": "not_me"}
    )
    assert filed.status_code == 201, filed.content
    dispute_id = filed.json()["id"]
    seen_by_bob = [
        filed,
        world.bob.get(f"/api/v1/disputes/{dispute_id}"),
        world.bob.get("/api/v1/disputes"),
    ]
    for response in seen_by_bob:
        assert response.status_code in (200, 201)
        for secret in ("ALICE_BANK", "Alice Bank", "SECRET-REF"):
            assert secret not in response.content.decode()
    response = world.bob.post(
        f"/api/v1/disputes/{dispute_id}/response", {"position": "withdraw_case"}
    )
    assert_problem(response, 404, "not_found")
    # subject access is for compliance officers only
    subject = f"/api/v1/compliance/subject-access?kind=phone&token={ident['token']}"
    assert_problem(world.bob.get(subject), 403, "forbidden_scope")
    # bob's audit trail has nothing of alice's
    trail = world.bob.get("/api/v1/audit-events")
    assert trail.status_code == 200
    events = {(event["action"], event["object_id"]) for event in trail.json()["results"]}
    assert ("case.submitted", case_id) not in events
    for secret in ("ALICE_BANK", "SECRET-REF"):
        assert secret not in trail.content.decode()
    # the case is untouched (disputed by bob's filing, not withdrawn)
    assert Case.objects.get(pk=case_id).status == "disputed"

"""Watches (api.md "Monitoring"): create, extend, list, delete, expiry, quota, audit, subject
access, and one member never reaching another's watches."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from registry.models import AuditEvent, LimitScope, MemberLimit, Watch
from registry.services.jobs import job_execute
from tests.support.api import assert_problem
from tests.support.factories import fresh_phone, identifier, submit_case
from tests.support.monitoring import WATCHES, watch, watch_body

pytestmark = pytest.mark.django_db


def test_it_watches_identifiers_in_order_for_180_days_by_default(world):
    phone, card = identifier("phone", fresh_phone()), identifier("bank_card", "6222021234567890")
    created = watch(world.bob, [phone, card])
    assert [w["kind"] for w in created] == ["phone", "bank_card"]
    default_expiry = (timezone.localdate() + timedelta(days=180)).isoformat()
    assert all(w["expires_on"] == default_expiry and w["label"] == "LOAN-0001" for w in created)
    assert all(len(w["fingerprint"]) == 16 for w in created)
    rows = Watch.objects.filter(member=world.bob.member)
    assert rows.count() == 2
    # The digest is stored, never the token.
    for row in rows:
        assert bytes(row.digest).hex() not in (phone["token"], card["token"])
        assert len(bytes(row.digest)) == 32


def test_it_extends_a_watch_instead_of_duplicating_it(world):
    phone = identifier("phone", fresh_phone())
    later = (timezone.localdate() + timedelta(days=300)).isoformat()
    (first,) = watch(world.bob, [phone])
    (again,) = watch(world.bob, [phone], expires_on=later, label="LOAN-0002")
    assert again["id"] == first["id"]
    assert again["expires_on"] == later and again["label"] == "LOAN-0002"
    # An earlier date does not shorten it.
    (third,) = watch(world.bob, [phone], expires_on=(date.today() + timedelta(days=10)).isoformat())
    assert third["expires_on"] == later
    assert Watch.objects.filter(member=world.bob.member).count() == 1
    actions = list(
        AuditEvent.objects.filter(object_id=first["id"])
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["watch.created", "watch.extended", "watch.extended"]


def test_it_gives_the_same_watch_for_an_identifier_sent_twice(world):
    phone = identifier("phone", fresh_phone())
    first, second = watch(world.bob, [phone, phone])
    assert first["id"] == second["id"]


def test_it_keeps_one_watch_per_member_and_identifier(world):
    phone = identifier("phone", fresh_phone())
    (bob_watch,) = watch(world.bob, [phone])
    (carol_watch,) = watch(world.carol, [phone])
    assert bob_watch["id"] != carol_watch["id"]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"purpose": "loan_application"}, "/purpose"),
        ({"consent_reference": ""}, "/consent_reference"),
        ({"expires_on": "2020-01-01"}, "/expires_on"),
        ({"expires_on": (date.today() + timedelta(days=367)).isoformat()}, "/expires_on"),
        ({"identifiers": []}, "/identifiers"),
    ],
)
def test_it_refuses_bad_watch_requests_and_changes_nothing(world, overrides, pointer):
    body = {**watch_body([identifier("phone", fresh_phone())]), **overrides}
    problem = assert_problem(world.bob.post(WATCHES, body), 400, "validation_error")
    assert any(e["pointer"].startswith(pointer) for e in problem["errors"]), problem
    assert not Watch.objects.exists()


def test_it_refuses_a_watch_without_consent_reference_at_all(world):
    body = watch_body([identifier("phone", fresh_phone())])
    del body["consent_reference"]
    assert_problem(world.bob.post(WATCHES, body), 400, "validation_error")


def test_it_refuses_a_raw_identifier_in_the_label_without_echoing_it(world):
    response = world.bob.post(
        WATCHES, watch_body([identifier("phone", fresh_phone())], label="13812345678")
    )
    assert_problem(response, 400, "raw_pii_rejected")
    assert b"13812345678" not in response.content


def test_it_refuses_more_than_1000_identifiers(world):
    many = [{"kind": "phone", "token": "ab" * 64}] * 1001
    assert_problem(world.bob.post(WATCHES, watch_body(many)), 400, "batch_too_large")


def test_it_charges_one_watch_unit_per_identifier_and_refuses_a_call_past_the_limit(world):
    MemberLimit.objects.create(
        member=world.bob.member, scope=LimitScope.WATCH, per_minute=3, per_day=100
    )
    two = [identifier("phone", fresh_phone()) for _ in range(2)]
    response = world.bob.post(WATCHES, watch_body(two))
    assert response.status_code == 201
    assert response["RateLimit-Limit"] == "3" and response["RateLimit-Remaining"] == "1"
    assert_problem(
        world.bob.post(WATCHES, watch_body([identifier("phone", fresh_phone())] * 2)),
        429,
        "rate_limited",
    )
    assert Watch.objects.count() == 2


def test_it_lists_only_the_members_own_watches_filtered_by_label(world):
    watch(world.bob, [identifier("phone", fresh_phone())], label="LOAN-A")
    watch(world.bob, [identifier("phone", fresh_phone())], label="LOAN-B")
    watch(world.carol, [identifier("phone", fresh_phone())], label="LOAN-A")
    everything = world.bob.get(WATCHES).json()["results"]
    assert len(everything) == 2
    only_a = world.bob.get(WATCHES, {"label": "LOAN-A"}).json()["results"]
    assert [w["label"] for w in only_a] == ["LOAN-A"]
    assert "token" not in only_a[0]


def test_it_deletes_a_watch_for_real_and_hides_others_watches(world):
    (bobs,) = watch(world.bob, [identifier("phone", fresh_phone())])
    assert_problem(world.carol.client.delete(f"{WATCHES}/{bobs['id']}"), 404, "not_found")
    assert Watch.objects.filter(pk=bobs["id"]).exists()
    assert world.bob.client.delete(f"{WATCHES}/{bobs['id']}").status_code == 204
    assert not Watch.objects.filter(pk=bobs["id"]).exists()
    assert AuditEvent.objects.filter(action="watch.deleted", object_id=bobs["id"]).exists()
    assert_problem(world.bob.client.delete(f"{WATCHES}/{bobs['id']}"), 404, "not_found")


def test_it_needs_the_lookup_scope(world):
    from tests.support.world import make_member

    submitter = make_member("SUBMIT_ONLY", scopes=["submit"])
    body = watch_body([identifier("phone", fresh_phone())])
    assert_problem(submitter.post(WATCHES, body), 403, "forbidden_scope")


def test_it_deletes_expired_watches_with_a_job(world, frozen_now):
    short = (timezone.localdate() + timedelta(days=1)).isoformat()
    (soon,) = watch(world.bob, [identifier("phone", fresh_phone())], expires_on=short)
    (later,) = watch(world.bob, [identifier("phone", fresh_phone())])
    job_execute("watch_housekeeping")
    assert Watch.objects.count() == 2  # alive through its expiry day
    frozen_now.advance(days=2)
    listed = world.bob.get(WATCHES).json()["results"]
    assert [w["id"] for w in listed] == [later["id"]]  # not listed once expired
    summary = job_execute("watch_housekeeping")
    assert summary["watches_expired"] == 1
    assert list(Watch.objects.values_list("id", flat=True)) == [
        __import__("uuid").UUID(later["id"])
    ]
    event = AuditEvent.objects.get(action="watches.expired")
    assert event.details["watch_ids"] == [soon["id"]]


def test_it_lists_live_watches_in_subject_access(world):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    watch(world.carol, [identifier("phone", fresh_phone())])
    report = world.officer.get(
        "/api/v1/compliance/subject-access", {"kind": "phone", "token": phone["token"]}
    ).json()
    assert [(w["member"], w["purpose"]) for w in report["watches"]] == [
        ("BOB_LOANS", "loan_monitoring")
    ]


def test_pepper_rotation_rekeys_watches_and_merges_a_rewatch(world):
    from registry.models import Alert
    from tests.support.monitoring import run_alert_tasks
    from tests.support.peppers import P1, P2, peppers

    phone, other = identifier("phone", fresh_phone()), identifier("phone", fresh_phone())
    (first,) = watch(world.bob, [phone])
    watch(world.bob, [other])
    later = (timezone.localdate() + timedelta(days=300)).isoformat()
    with peppers(P1, P2):
        (again,) = watch(world.bob, [phone], expires_on=later)  # a v2 twin during rotation
        assert again["id"] != first["id"]
        summary = job_execute("pepper_rotation")
        assert summary["complete"] and summary["rotated"]["watch"] == 2
        assert summary["merged"] == 1
        rows = Watch.objects.filter(member=world.bob.member)
        assert rows.count() == 2 and {w.pepper_version for w in rows} == {2}
        assert rows.get(pk=again["id"]).expires_on.isoformat() == later
        submit_case(world.alice, identifiers=[other])  # digested at v2 only
        run_alert_tasks()
        assert Alert.objects.filter(member=world.bob.member, type="case.reported").count() == 1

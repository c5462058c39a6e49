"""Alerts (api.md "Monitoring"): case.reported / case.cleared through the case life cycle and
the outbox, velocity.exceeded from the sightings, exactly once per (watch, cause), and the
pull API with its cursor."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.actors import Actor
from registry.models import Alert, AuditEvent, Case, Dispute, OutboxTask
from registry.services.alerts import alerts_for_cases
from registry.services.disputes import dispute_decide
from registry.services.jobs import job_execute
from tests.support.api import assert_problem
from tests.support.factories import fresh_phone, identifier, lookup, submit_case
from tests.support.monitoring import ALERT_TASK, ALERTS, run_alert_tasks, watch
from tests.support.world import make_member, race

pytestmark = pytest.mark.django_db
TASK = ALERT_TASK


def alerts(party, after: str = "") -> dict:
    response = party.get(ALERTS, {"after": after} if after else {})
    assert response.status_code == 200, response.content
    return response.json()


def test_it_tells_watching_members_once_when_another_member_reports_a_case(world):
    phone = identifier("phone", fresh_phone())
    (bobs,) = watch(world.bob, [phone], label="LOAN-77")
    watch(world.alice, [phone])  # the reporter's own watch is not told about its own case
    case = submit_case(world.alice, identifiers=[phone, identifier("imei", "356938035643809")])
    assert OutboxTask.objects.filter(task=TASK).count() == 1  # one per submission
    assert run_alert_tasks() == 1
    (alert,) = alerts(world.bob)["results"]
    assert alert["type"] == "case.reported"
    assert alert["watch"] == {
        "id": bobs["id"],
        "label": "LOAN-77",
        "kind": "phone",
        "fingerprint": bobs["fingerprint"],
    }
    assert alert["case"] == {
        "case_id": case["id"],
        "category": case["category"],
        "confirmed_at": case["confirmed_at"],
        "status": "active",
    }
    assert alert["velocity"] is None
    text = str(alert)
    assert phone["token"] not in text and "ALICE" not in text
    assert alerts(world.alice)["results"] == []
    assert alerts(world.carol)["results"] == []
    # The task again (a retry, a second publish) adds nothing.
    assert alerts_for_cases(case_ids=[case["id"]]) == 0
    assert Alert.objects.count() == 1


def test_it_clears_a_withdrawn_case_for_the_watches_it_was_reported_to(world):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    case = submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    watch(world.carol, [phone])  # watching after the report: nothing to clear
    response = world.alice.post(f"/api/v1/cases/{case['id']}/withdraw", {"reason": "mistake"})
    assert response.status_code == 200
    assert run_alert_tasks() == 1
    reported, cleared = alerts(world.bob)["results"]
    assert (reported["type"], cleared["type"]) == ("case.reported", "case.cleared")
    assert cleared["case"]["status"] == "withdrawn" and cleared["case"]["case_id"] == case["id"]
    assert alerts(world.carol)["results"] == []
    assert alerts_for_cases(case_ids=[case["id"]]) == 0


def test_it_clears_on_an_overdue_dispute_and_reports_again_when_the_dispute_is_rejected(
    world, frozen_now
):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone], expires_on=(timezone.localdate() + timedelta(days=200)).isoformat())
    case = submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    filed = world.carol.post(
        "/api/v1/disputes", {"case_id": case["id"], "identifier": phone, "reason": "not_me"}
    )
    assert filed.status_code == 201, filed.content
    assert run_alert_tasks() == 0  # a disputed case is still in lookups
    frozen_now.advance(days=21)
    job_execute("dispute_deadlines")
    assert run_alert_tasks() == 1
    dispute_decide(
        actor=Actor.for_officer(world.officer.user),
        dispute_id=filed.json()["id"],
        outcome="rejected",
        rationale="Evidence holds.",
    )
    assert run_alert_tasks() == 1
    types = [a["type"] for a in alerts(world.bob)["results"]]
    assert types == ["case.reported", "case.cleared", "case.reported"]
    assert Dispute.objects.get().status == "rejected"


def test_it_clears_an_expired_case(world, frozen_now):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone], expires_on=(timezone.localdate() + timedelta(days=366)).isoformat())
    case = submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    Case.objects.filter(pk=case["id"]).update(expires_at=timezone.localdate() + timedelta(days=1))
    frozen_now.advance(days=2)
    job_execute("expiry")
    assert run_alert_tasks() == 1
    assert alerts(world.bob)["results"][-1]["case"]["status"] == "expired"


def test_an_expired_watch_produces_nothing(world, frozen_now):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone], expires_on=(timezone.localdate() + timedelta(days=1)).isoformat())
    frozen_now.advance(days=2)
    submit_case(world.alice, identifiers=[phone])
    assert run_alert_tasks() == 0
    assert not Alert.objects.exists()


def test_it_pages_alerts_oldest_first_with_a_cursor(world):
    phones = [identifier("phone", fresh_phone()) for _ in range(3)]
    watch(world.bob, phones)
    cases = [submit_case(world.alice, identifiers=[p]) for p in phones]
    run_alert_tasks()
    first = world.bob.get(ALERTS, {"limit": 2}).json()
    assert [a["case"]["case_id"] for a in first["results"]] == [c["id"] for c in cases[:2]]
    assert first["has_more"] is True
    rest = alerts(world.bob, after=first["next_cursor"])
    assert [a["case"]["case_id"] for a in rest["results"]] == [cases[2]["id"]]
    empty = alerts(world.bob, after=rest["next_cursor"])
    assert empty["results"] == [] and empty["next_cursor"] == rest["next_cursor"]
    assert AuditEvent.objects.filter(action="alert.listed", member=world.bob.member).count() == 2


def test_it_refuses_a_garbled_cursor(world):
    assert_problem(world.bob.get(ALERTS, {"after": "not-a-cursor!"}), 400, "validation_error")


def test_it_raises_velocity_once_when_enough_other_members_look_a_watched_identifier_up(world):
    phone = identifier("phone", fresh_phone())
    (bobs,) = watch(world.bob, [phone])
    dave = make_member("DAVE_FIN")
    lookup(world.alice, [phone])
    lookup(world.carol, [phone])
    lookup(world.bob, [phone])  # the watching member's own lookups do not count
    assert job_execute("velocity_alerts")["alerts"] == 0
    lookup(dave, [phone])
    assert job_execute("velocity_alerts")["alerts"] == 1
    (alert,) = alerts(world.bob)["results"]
    assert alert["type"] == "velocity.exceeded"
    assert alert["velocity"] == {"24h": 3, "threshold": 3}
    assert alert["case"] is None and alert["watch"]["id"] == bobs["id"]
    lookup(make_member("ERIN_PAY"), [phone])
    assert job_execute("velocity_alerts")["alerts"] == 0  # at most once a day per watch


def test_it_uses_the_members_own_velocity_threshold(world):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    world.bob.member.velocity_alert_threshold = 1
    world.bob.member.save()
    lookup(world.carol, [phone])
    assert job_execute("velocity_alerts")["alerts"] == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_fanning_out_the_same_case_at_once_create_one_alert():
    from tests.support.world import make_world

    world = make_world()
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    case = submit_case(world.alice, identifiers=[phone])
    Alert.objects.all().delete()  # whatever the on-commit publish did (no worker here)
    results = race(*[lambda: alerts_for_cases(case_ids=[case["id"]])] * 4)
    assert sorted(results) == [0, 0, 0, 1], results
    assert Alert.objects.filter(type="case.reported").count() == 1


def test_housekeeping_deletes_alerts_after_their_retention(world, frozen_now):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    frozen_now.advance(days=89)
    assert job_execute("watch_housekeeping")["alerts_purged"] == 0
    frozen_now.advance(days=2)
    assert job_execute("watch_housekeeping")["alerts_purged"] == 1
    assert not Alert.objects.exists()
    assert AuditEvent.objects.filter(action="alerts.purged").count() == 1

"""Rings (services/rings.py): live cases of different members sharing an identifier are linked,
and the connected components are rings, kept current after each submission and closure (the
outbox's ring updates, run here as a worker would) and by the daily rebuild, which agrees.

The real worker and the admin: tests/test_rings_worker.py, tests/test_rings_admin.py."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from registry.actors import Actor
from registry.models import Case, OutboxTask, Ring, RingCase
from registry.selectors.rings import _LINKS_SQL
from registry.services.case_lifecycle import TASK_CASE_RINGS
from registry.services.disputes import dispute_decide
from registry.services.jobs import job_execute
from registry.services.rings import (
    _NEIGHBOURS_SQL,
    _SHARED_GROUPS_SQL,
    ring_update_for_cases,
    rings_rebuild,
)
from tests.support.factories import file_dispute
from tests.support.rings import (
    device,
    phone,
    report,
    ring_of,
    rings,
    run_ring_tasks,
    withdraw,
)
from tests.support.world import make_member

pytestmark = pytest.mark.django_db


def test_it_links_cases_of_two_members_that_share_an_identifier(world):
    shared = phone()
    a = report(world.alice, shared, phone())
    b = report(world.bob, shared)
    report(world.carol, phone())  # shares nothing

    assert OutboxTask.objects.filter(task=TASK_CASE_RINGS).count() == 3  # one per submission
    run_ring_tasks()

    assert rings() == {frozenset({a, b})}
    ring = ring_of(a)
    assert (ring.size, ring.member_count, ring.shared_identifiers) == (2, 2, 1)
    assert ring.grown_7d == ring.grown_30d == 2


def test_it_does_not_link_cases_of_the_same_member(world):
    shared = phone()
    report(world.alice, shared)
    report(world.alice, shared)

    run_ring_tasks()

    assert rings() == set()


def test_a_third_members_case_joins_two_cases_of_one_member_into_one_ring(world):
    shared = phone()
    a1 = report(world.alice, shared)
    a2 = report(world.alice, shared)
    c = report(world.carol, shared)

    run_ring_tasks()

    assert rings() == {frozenset({a1, a2, c})}
    assert ring_of(c).member_count == 2


def test_a_case_bridging_two_rings_merges_them_and_the_ring_keeps_its_number(world):
    p1, p2 = phone(), device(1)
    a1, b1 = report(world.alice, p1), report(world.bob, p1)
    a2, c1 = report(world.alice, p2), report(world.carol, p2)
    run_ring_tasks()
    first, second = ring_of(a1), ring_of(a2)
    assert first.pk != second.pk

    bridge = report(world.bob, phone(), p2, p1)
    (summary,) = run_ring_tasks()

    assert rings() == {frozenset({a1, b1, a2, c1, bridge})}
    merged = ring_of(bridge)
    assert merged.pk == first.pk and merged.first_seen_at == first.first_seen_at
    assert not Ring.objects.filter(pk=second.pk).exists()
    assert (merged.size, merged.member_count, merged.shared_identifiers) == (5, 3, 2)
    assert summary["rings_dropped"] == 1 and summary["cases_joined"] == 3


def test_withdrawing_the_bridge_splits_the_ring_again(world):
    p1, p2 = phone(), device(2)
    a1, b1 = report(world.alice, p1), report(world.bob, p1)
    c1, c2 = report(world.carol, p2), report(world.carol, phone())
    a2 = report(world.alice, p2)
    bridge = report(world.bob, p1, p2)
    run_ring_tasks()
    assert rings() == {frozenset({a1, b1, c1, a2, bridge})}
    before = ring_of(bridge).pk

    withdraw(world.bob, bridge)
    run_ring_tasks()

    assert rings() == {frozenset({a1, b1}), frozenset({c1, a2})}
    assert before in {ring_of(a1).pk, ring_of(c1).pk}  # one part keeps the number
    assert ring_of(bridge) is None and ring_of(c2) is None


def test_a_ring_of_two_goes_when_one_case_expires(world):
    shared = phone()
    a, b = report(world.alice, shared), report(world.bob, shared)
    run_ring_tasks()
    ring = ring_of(a)

    Case.objects.filter(pk=a).update(expires_at=timezone.localdate())
    job_execute("expiry")
    run_ring_tasks()

    assert rings() == set()
    assert not Ring.objects.filter(pk=ring.pk).exists()
    assert ring_of(b) is None


def test_a_case_removed_on_an_upheld_dispute_leaves_its_ring_and_a_disputed_one_stays(world):
    shared = phone()
    a = report(world.alice, shared)
    b = report(world.bob, shared)
    c = report(world.carol, shared)
    run_ring_tasks()
    dispute = file_dispute(world.carol, b, shared)
    run_ring_tasks()
    assert rings() == {frozenset({a, b, c})}  # disputed: still live, still in the ring

    dispute_decide(
        actor=Actor.for_officer(world.officer.user),
        dispute_id=dispute["id"],
        outcome="upheld",
        rationale="The subject's police report matches.",
    )
    run_ring_tasks()

    assert rings() == {frozenset({a, c})}


def test_a_new_case_is_not_linked_to_a_closed_one(world):
    shared = phone()
    a = report(world.alice, shared)
    withdraw(world.alice, a)
    report(world.bob, shared)

    run_ring_tasks()

    assert rings() == set()


def test_the_update_is_idempotent_and_the_full_rebuild_agrees_with_it(world):
    dave = make_member("DAVE_FINANCE")
    shared, other = phone(), device(3)
    first = report(world.alice, shared, other)
    report(world.bob, shared)
    report(world.carol, other)
    report(dave, other, phone())
    x = report(world.alice, device(4))
    report(world.bob, device(4))
    withdraw(world.alice, x)
    run_ring_tasks()
    state = rings()
    numbers = dict(RingCase.objects.values_list("case_id", "ring_id"))

    ids = [str(pk) for pk in Case.objects.values_list("pk", flat=True)]
    again = ring_update_for_cases(case_ids=ids)
    rebuilt = rings_rebuild()

    assert again["rings_changed"] == again["rings_created"] == again["rings_dropped"] == 0
    assert rebuilt["rings_changed"] == rebuilt["rings_created"] == rebuilt["rings_dropped"] == 0
    assert rings() == state and len(state) == 1
    assert dict(RingCase.objects.values_list("case_id", "ring_id")) == numbers
    assert ring_of(first).member_count == 4


def test_the_rebuild_repairs_a_table_that_missed_updates(world):
    shared = phone()
    a, b = report(world.alice, shared), report(world.bob, shared)
    OutboxTask.objects.filter(task=TASK_CASE_RINGS).delete()  # lost, say
    assert rings() == set()

    summary = job_execute("ring_rebuild")

    assert rings() == {frozenset({a, b})}
    assert summary["rings_created"] == 1 and summary["shared_identifiers"] == 1


def test_an_update_takes_in_a_stale_ring_that_a_case_reached(world):
    """The table says c is in another ring (it missed an update): the update moves it."""
    shared = phone()
    a, b = report(world.alice, shared), report(world.bob, shared)
    c = report(world.carol, device(5))
    d = report(world.alice, device(5))
    run_ring_tasks()
    stale = ring_of(c)
    # c's case now also holds the shared phone (as if its update had been lost).
    from registry.models import CaseIdentifier

    ident = CaseIdentifier.objects.filter(case_id=a).get()
    CaseIdentifier.objects.create(
        case_id=c, kind=ident.kind, digest=ident.digest, fingerprint=ident.fingerprint
    )

    ring_update_for_cases(case_ids=[a])

    assert rings() == {frozenset({a, b, c, d})}
    assert Ring.objects.count() == 1 and Ring.objects.get().pk in {ring_of(b).pk, stale.pk}


def test_growth_counts_the_cases_reported_in_the_last_7_and_30_days(world):
    shared = phone()
    old = report(world.alice, shared)
    month = report(world.bob, shared)
    new = report(world.carol, shared)
    now = timezone.now()
    Case.objects.filter(pk=old).update(created_at=now - timedelta(days=40))
    Case.objects.filter(pk=month).update(created_at=now - timedelta(days=10))

    rings_rebuild(now=now)

    ring = ring_of(new)
    assert (ring.size, ring.grown_7d, ring.grown_30d) == (3, 1, 2)
    assert ring.last_grown_at == Case.objects.get(pk=new).created_at


@pytest.mark.parametrize(
    ("sql", "params", "indexes"),
    [
        (_NEIGHBOURS_SQL, ["{00000000-0000-0000-0000-000000000000}"], {"case_identifier_digest"}),
        # Reads every identifier once (the daily rebuild): any plan without a sort of the
        # table will do; bench/README.md has its plan at 10M identifiers.
        (_SHARED_GROUPS_SQL, [], set()),
        (_LINKS_SQL, [1, 100], {"case_identifier_digest", "ringcase_ring"}),
    ],
    ids=["neighbours", "shared-groups", "links"],
)
def test_the_ring_queries_can_be_served_by_indexes(world, sql, params, indexes):
    """With sequential scans priced out (as they are at 10M identifiers, where this was also
    checked with EXPLAIN ANALYZE on the bench seed), each query finds its index path."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for index in indexes:
        assert index in plan, plan
    assert "Seq Scan on registry_caseidentifier" not in plan, plan


@pytest.mark.django_db(transaction=True)
def test_updates_of_one_component_at_once_make_one_ring():
    """Four workers update the same new component at the same moment (each from another of
    its cases): the advisory lock has them take turns, so one ring is made, not four."""
    from tests.support.world import make_world, race

    world = make_world()
    p1, p2 = phone(), device(41)
    cases = [
        report(world.alice, p1),
        report(world.bob, p1, p2),
        report(world.carol, p2),
        report(world.alice, p2),
    ]
    Ring.objects.all().delete()  # whatever an on-commit publish did (no worker here)

    results = race(*[lambda case=case: ring_update_for_cases(case_ids=[case]) for case in cases])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r["rings_created"] for r in results) == [0, 0, 0, 1]
    assert rings() == {frozenset(cases)} and Ring.objects.count() == 1

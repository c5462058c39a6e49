"""Rings in tests: cases that share identifiers across members, the outbox's ring updates run
as a worker would, and the ring table read back as sets of case ids."""

from registry.models import OutboxTask, Ring, RingCase
from registry.services.case_lifecycle import TASK_CASE_RINGS
from registry.services.outbox import outbox_done
from registry.services.rings import ring_update_for_cases
from tests.support.factories import fresh_phone, identifier, submit_case


def phone() -> dict:
    return identifier("phone", fresh_phone())


def device(number: int) -> dict:
    return identifier("imei", f"35693803{number:07d}")


def report(party, *identifiers: dict, **overrides) -> str:
    """`party` reports a case holding these identifiers; returns the case id."""
    return submit_case(party, identifiers=list(identifiers), **overrides)["id"]


def withdraw(party, case_id: str) -> None:
    response = party.post(f"/api/v1/cases/{case_id}/withdraw", {"reason": "Reported in error."})
    assert response.status_code == 200, response.content


def run_ring_tasks() -> list[dict]:
    """What a worker does with the ring updates the outbox holds (no worker runs in `db`
    tests, where nothing commits): run each not yet done, in order, and mark it done."""
    summaries = []
    for row in OutboxTask.objects.filter(task=TASK_CASE_RINGS, done_at=None).order_by("pk"):
        summaries.append(ring_update_for_cases(**row.kwargs))
        outbox_done(outbox_id=row.pk)
    return summaries


def rings() -> set[frozenset[str]]:
    """Every ring as the set of its cases' ids."""
    found: dict[int, set[str]] = {}
    for ring_id, case_id in RingCase.objects.values_list("ring_id", "case_id"):
        found.setdefault(ring_id, set()).add(str(case_id))
    return {frozenset(cases) for cases in found.values()}


def ring_of(case_id) -> Ring | None:
    membership = RingCase.objects.filter(case_id=case_id).select_related("ring").first()
    return membership.ring if membership else None

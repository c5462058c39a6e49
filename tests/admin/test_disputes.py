"""The dispute desk: the queue by deadline, the case file, and decisions through the
same service as the API (once, with a rationale free of raw personal data)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import Case, CaseIdentifier, Dispute
from tests.support.admin import (
    ADMIN,
    RATIONALE,
    decide_url,
    messages_of,
    uphold,
    verified_client,
)
from tests.support.audit import events
from tests.support.factories import STATEMENT, disputed_case
from tests.support.world import make_officer

pytestmark = pytest.mark.django_db


def test_the_queue_is_sorted_by_deadline_with_overdue_disputes_highlighted(world, officer):
    _, _, later = disputed_case(world)
    _, _, overdue = disputed_case(world)
    Dispute.objects.filter(pk=overdue["id"]).update(due_at=timezone.now() - timedelta(days=2))

    response = officer.get(f"{ADMIN}registry/dispute/")

    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [str(d.pk) for d in rows] == [overdue["id"], later["id"]]
    html = response.content.decode()
    assert html.index(overdue["id"]) < html.index(later["id"])
    assert 'class="registry-overdue">overdue by 2 days' in html
    assert 'class="registry-due">19 days 23 hours left' in html


def test_the_queue_hides_decided_disputes_until_asked(world, officer):
    _, _, dispute = disputed_case(world)
    officer.post(decide_url(dispute["id"]), {"outcome": "rejected", "rationale": RATIONALE})
    assert dispute["id"] not in officer.get(f"{ADMIN}registry/dispute/").content.decode()
    decided = officer.get(f"{ADMIN}registry/dispute/?queue=decided").content.decode()
    assert dispute["id"] in decided


def test_the_case_file_shows_the_case_statements_and_history_never_a_token(world, officer):
    case, ident, dispute = disputed_case(world)
    world.alice.post(
        f"/api/v1/disputes/{dispute['id']}/response",
        {"position": "maintain", "statement": "We hold the signed contract."},
    )

    response = officer.get(f"{ADMIN}registry/dispute/{dispute['id']}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    fingerprint = CaseIdentifier.objects.get(case_id=case["id"]).fingerprint
    assert fingerprint in html
    assert STATEMENT in html and "We hold the signed contract." in html
    for label in ("Case submitted", "Dispute filed", "Dispute responded"):
        assert f">{label}</a>" in html  # actions in words, each a link to its event
    assert ident["token"] not in html
    digest = bytes(CaseIdentifier.objects.get(case_id=case["id"]).digest).hex()
    assert digest not in html
    assert 'id="decision-form"' in html


def test_an_officer_decides_a_dispute_through_the_same_service_as_the_api(world, officer):
    case, _, dispute = disputed_case(world)

    response = uphold(officer, dispute["id"], follow=True)

    assert response.status_code == 200
    assert any("Upheld" in m for m in messages_of(response))
    decided = Dispute.objects.get(pk=dispute["id"])
    assert decided.status == "upheld" and decided.rationale == RATIONALE
    assert decided.decided_by == world.officer.user
    assert Case.objects.get(pk=case["id"]).status == "removed"
    assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()
    event = events("dispute.decided", object_id=dispute["id"]).get()
    assert event.actor_type == "officer" and event.officer == "officer"
    assert event.details["outcome"] == "upheld"
    # The member sees the same decision through the API.
    assert world.bob.get(f"/api/v1/disputes/{dispute['id']}").json()["status"] == "upheld"


def test_a_second_decision_is_refused_with_a_message_and_changes_nothing(world, officer):
    case, _, dispute = disputed_case(world)
    first = officer.post(
        decide_url(dispute["id"]),
        {"outcome": "rejected", "rationale": RATIONALE, "subject_statement": "I dispute this."},
    )
    assert first.status_code == 302
    before = Dispute.objects.get(pk=dispute["id"])

    second = officer.post(
        decide_url(dispute["id"]),
        {"outcome": "upheld", "rationale": "Changed my mind."},
        follow=True,
    )

    assert second.status_code == 200
    assert any("already decided" in m for m in messages_of(second))
    after = Dispute.objects.get(pk=dispute["id"])
    assert (after.status, after.rationale, after.decided_at) == (
        before.status,
        before.rationale,
        before.decided_at,
    )
    assert Case.objects.get(pk=case["id"]).status == "active"
    assert events("dispute.decided", object_id=dispute["id"]).count() == 1
    assert 'id="decision-form"' not in second.content.decode()


def test_a_decision_after_the_api_decided_is_refused_too(world, officer):
    _, _, dispute = disputed_case(world)
    api = world.officer.post(
        f"/api/v1/disputes/{dispute['id']}/decision",
        {"outcome": "rejected", "rationale": RATIONALE},
    )
    assert api.status_code == 200, api.content

    response = officer.post(
        decide_url(dispute["id"]), {"outcome": "upheld", "rationale": RATIONALE}, follow=True
    )

    assert any("already decided" in m for m in messages_of(response))
    assert Dispute.objects.get(pk=dispute["id"]).status == "rejected"


def test_a_decision_without_rationale_is_sent_back_with_the_form(world, officer):
    _, _, dispute = disputed_case(world)
    response = officer.post(decide_url(dispute["id"]), {"outcome": "upheld", "rationale": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["rationale"]
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"


def test_the_desk_answers_unknown_disputes_without_an_error_page(world, officer):
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = officer.get(f"{ADMIN}registry/dispute/{bad}/change/", follow=True)
        assert response.status_code == 200
        assert any("No such dispute" in m for m in messages_of(response))
    response = officer.post(
        decide_url("00000000-0000-0000-0000-000000000000"),
        {"outcome": "upheld", "rationale": RATIONALE},
        follow=True,
    )
    assert response.status_code == 200


def test_a_second_officer_can_work_the_desk_too(world):
    other = make_officer("li.na")
    client = verified_client(other.user)
    _, _, dispute = disputed_case(world)
    response = client.post(
        decide_url(dispute["id"]), {"outcome": "rejected", "rationale": RATIONALE}
    )
    assert response.status_code == 302
    assert Dispute.objects.get(pk=dispute["id"]).decided_by == other.user


def test_a_rationale_with_raw_personal_data_is_refused_with_a_message(world, officer):
    _, _, dispute = disputed_case(world)
    response = officer.post(
        decide_url(dispute["id"]),
        {"outcome": "rejected", "rationale": "Confirmed by phone with 13812345678"},
        follow=True,
    )
    # refused by the form, before the service (which screens too, for its other callers)
    assert response.status_code == 400
    [error] = response.context["form"].errors.as_data()["rationale"]
    assert error.code == "raw_pii_rejected" and "13812345678" not in str(error.message)
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    assert not events("dispute.decided").exists()

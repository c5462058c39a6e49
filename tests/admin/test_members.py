"""Members in the admin: onboarding, contact addresses, suspension and rate limits, each
through the audited services."""

import pytest
from django.conf import settings

from registry.models import Member, MemberLimit
from registry.services.quotas import limits_for
from tests.support.admin import ADMIN
from tests.support.audit import events
from tests.support.factories import fresh_phone, identifier

pytestmark = pytest.mark.django_db


def test_an_officer_onboards_a_member_through_the_audited_service(world, officer):
    response = officer.post(
        f"{ADMIN}registry/member/add/",
        {"code": "DAVID_FIN", "name": "David Finance", "contact_email": "risk@david.example"},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    member = Member.objects.get(code="DAVID_FIN")
    assert member.contact_email == "risk@david.example"
    event = events("member.created", object_id="DAVID_FIN").get()
    assert event.officer == "officer"


def test_a_bad_member_code_is_refused_with_the_form(world, officer):
    response = officer.post(
        f"{ADMIN}registry/member/add/", {"code": "bad code", "name": "X", "contact_email": ""}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["code"]
    assert not Member.objects.filter(name="X").exists()


def test_an_officer_changes_contact_addresses_with_an_audit_event(world, officer):
    member = world.carol.member
    response = officer.post(
        f"{ADMIN}registry/member/{member.pk}/change/",
        {"name": member.name, "contact_email": "fraud-desk@carol.example"},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.contact_email == "fraud-desk@carol.example"
    assert events("member.updated", object_id=member.code).get().details == {
        "changed": ["contact_email"]
    }


def test_an_officer_suspends_and_reactivates_a_member(world, officer):
    member = world.alice.member
    url = f"{ADMIN}registry/member/{member.pk}/"
    assert world.alice.get("/api/v1/audit-events").status_code == 200

    response = officer.post(url + "suspend/", {"rationale": "Unpaid membership fees."})

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.status == "suspended"
    event = events("member.suspended", object_id=member.code).get()
    # free text: its length only, never the words (issue 13)
    assert event.details == {"rationale_length": len("Unpaid membership fees.")}
    assert event.officer == "officer"
    assert world.alice.get("/api/v1/audit-events").status_code == 401

    assert officer.post(url + "reactivate/", {"rationale": "Fees paid."}).status_code == 302
    member.refresh_from_db()
    assert member.status == "active"
    assert world.alice.get("/api/v1/audit-events").status_code == 200


def test_a_suspension_needs_a_rationale(world, officer):
    member = world.alice.member
    response = officer.post(f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": ""})
    assert response.status_code == 200 and response.context["form"].errors
    member.refresh_from_db()
    assert member.status == "active"


def test_an_officer_sets_a_rate_limit_that_applies_at_once(
    world, officer, django_capture_on_commit_callbacks
):
    member = world.bob.member
    assert limits_for(member.pk, "lookup") == (
        settings.REGISTRY_DEFAULT_RATE_PER_MINUTE,
        settings.REGISTRY_DEFAULT_QUOTA_PER_DAY,
    )

    with django_capture_on_commit_callbacks(execute=True):  # the limits are forgotten on commit
        response = officer.post(
            f"{ADMIN}registry/member/{member.pk}/limit/",
            {"scope": "lookup", "per_minute": 2, "per_day": 100},
        )

    assert response.status_code == 302
    assert MemberLimit.objects.get(member=member, scope="lookup").per_minute == 2
    assert limits_for(member.pk, "lookup") == (2, 100)  # this process's copy was dropped on commit
    assert events("member.limit_set", object_id=member.code).get().officer == "officer"
    ident = identifier("phone", fresh_phone())
    assert (
        world.bob.post(
            "/api/v1/lookups", {"purpose": "loan_application", "identifiers": [ident]}
        ).status_code
        == 200
    )
    world.bob.post("/api/v1/lookups", {"purpose": "loan_application", "identifiers": [ident]})
    third = world.bob.post(
        "/api/v1/lookups", {"purpose": "loan_application", "identifiers": [ident]}
    )
    assert third.status_code == 429


def test_a_limit_below_one_is_refused(world, officer):
    member = world.bob.member
    response = officer.post(
        f"{ADMIN}registry/member/{member.pk}/limit/",
        {"scope": "lookup", "per_minute": 0, "per_day": 100},
    )
    assert response.status_code == 200 and response.context["form"].errors["per_minute"]
    assert not MemberLimit.objects.filter(member=member).exists()

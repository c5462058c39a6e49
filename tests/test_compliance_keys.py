"""Compliance API keys (issue 13): held only by users in the officers' group (auditors get
read-only keys), checked at every call, expiring, and never issued by an officer to
themself."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from registry.actors import Actor
from registry.errors import ValidationFailed
from registry.models import ApiKey, AuditEvent, Dispute
from registry.services.api_keys import api_key_issue
from registry.services.members import AUDITORS_GROUP, OFFICERS_GROUP
from tests.support.admin import ADMIN, make_auditor, messages_of, verified_client
from tests.support.api import assert_problem
from tests.support.factories import case_payload, fresh_phone, identifier, submit_case
from tests.support.world import KeyClient, make_officer

pytestmark = pytest.mark.django_db
SUBJECT_ACCESS = "/api/v1/compliance/subject-access"


def subject_access(client: KeyClient):
    subject = identifier("phone", fresh_phone())
    return client.get(SUBJECT_ACCESS, {"kind": subject["kind"], "token": subject["token"]})


def open_dispute(world) -> str:
    payload = case_payload()
    case = submit_case(world.alice, **payload)
    filed = world.bob.post(
        "/api/v1/disputes",
        {
            "case_id": case["id"],
            "identifier": payload["identifiers"][0],
            "reason": "not_me",
            "statement": "The subject denies it.",
        },
    )
    assert filed.status_code == 201, filed.content
    return filed.json()["id"]


def decide(client: KeyClient, dispute_id: str):
    return client.post(
        f"/api/v1/disputes/{dispute_id}/decision",
        {"outcome": "upheld", "rationale": "The police report matches the dates."},
    )


def issue_by_system(user, scopes) -> KeyClient:
    return KeyClient(api_key_issue(actor=Actor.system(), officer=user, scopes=scopes).raw_key)


def test_it_refuses_the_key_of_an_officer_removed_from_the_officers_group(world):
    assert subject_access(world.officer.client).status_code == 200
    world.officer.user.groups.remove(Group.objects.get(name=OFFICERS_GROUP))

    # The very next call: the key was not revoked, its holder is simply no officer any more.
    assert_problem(subject_access(world.officer.client), 401, "unauthenticated")
    assert_problem(decide(world.officer.client, open_dispute(world)), 401, "unauthenticated")


def test_it_refuses_a_compliance_key_of_an_officer_moved_to_the_auditors(world):
    world.officer.user.groups.set([Group.objects.get(name=AUDITORS_GROUP)])
    assert_problem(subject_access(world.officer.client), 401, "unauthenticated")


def test_it_expires_compliance_keys_after_the_configured_days(world, settings):
    settings.REGISTRY_COMPLIANCE_KEY_DAYS = 90
    key = ApiKey.objects.get(officer=world.officer.user)
    lifetime = key.expires_at - key.created_at
    assert timedelta(days=90) - timedelta(minutes=1) < lifetime <= timedelta(days=90)
    assert ApiKey.objects.get(member=world.alice.member).expires_at is None  # members' do not
    assert subject_access(world.officer.client).status_code == 200

    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(subject_access(world.officer.client), 401, "unauthenticated")


def test_it_refuses_an_officer_issuing_a_compliance_key_to_themself(world):
    officer = world.officer.user
    before = ApiKey.objects.count()
    with pytest.raises(ValidationFailed, match="themself"):
        api_key_issue(actor=Actor.for_officer(officer), officer=officer, scopes=["compliance"])

    # The same through the admin: refused, nothing issued, nothing shown.
    admin = verified_client(officer)
    page = admin.post(
        f"{ADMIN}registry/apikey/add/", {"officer": officer.pk, "scopes": ["compliance"]}
    )
    assert page.status_code == 200
    assert not re.search(r"rk_[0-9a-f]{12}_", page.content.decode())
    assert any("themself" in m for m in messages_of(page))
    assert ApiKey.objects.count() == before

    # A second officer issues it: four eyes.
    colleague = make_officer("li.na").user
    issued = api_key_issue(
        actor=Actor.for_officer(colleague), officer=officer, scopes=["compliance"]
    )
    assert issued.api_key.officer == officer and issued.api_key.expires_at is not None
    assert AuditEvent.objects.filter(action="api_key.issued", officer="li.na").exists()


def test_it_issues_compliance_keys_to_officers_and_auditors_only(world):
    staff = world.officer.user.__class__.objects.create_user(
        username="helpdesk", password="x" * 20, is_staff=True
    )
    with pytest.raises(ValidationFailed):
        api_key_issue(actor=Actor.system(), officer=staff, scopes=["compliance_read"])
    auditor = make_auditor()
    with pytest.raises(ValidationFailed):
        api_key_issue(actor=Actor.system(), officer=auditor, scopes=["compliance"])
    with pytest.raises(ValidationFailed):
        api_key_issue(actor=Actor.system(), officer=world.officer.user, scopes=["lookup"])
    assert not ApiKey.objects.filter(officer__in=[staff, auditor]).exists()


def test_it_lets_an_auditors_key_read_but_not_decide(world):
    auditor = issue_by_system(make_auditor(), ["compliance_read"])
    dispute_id = open_dispute(world)

    assert subject_access(auditor).status_code == 200
    assert auditor.get("/api/v1/disputes").status_code == 200
    assert auditor.get(f"/api/v1/disputes/{dispute_id}").status_code == 200
    assert auditor.get("/api/v1/audit-events").status_code == 200

    assert_problem(decide(auditor, dispute_id), 403, "forbidden_scope")
    assert Dispute.objects.get(pk=dispute_id).status == "open"
    assert decide(world.officer.client, dispute_id).status_code == 200  # an officer's key does

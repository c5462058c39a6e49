"""API keys in the admin: issued (the secret shown once), revoked, never edited."""

import re

import pytest
from django.test import Client

from registry.models import ApiKey
from tests.support.admin import ADMIN, messages_of
from tests.support.audit import events

pytestmark = pytest.mark.django_db


def test_a_new_key_is_shown_once_then_only_its_prefix(world, officer):
    member = world.carol.member

    response = officer.post(
        f"{ADMIN}registry/apikey/add/",
        {"member": member.pk, "scopes": ["lookup", "submit"], "name": "batch system"},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw_key = re.search(r'value="(rk_[0-9a-f]+_[A-Za-z0-9_\-]+)"', response.content.decode())[1]
    key = ApiKey.objects.get(prefix=raw_key.split("_")[1])
    assert key.member == member and sorted(key.scopes) == ["lookup", "submit"]
    assert events("api_key.issued", object_id=key.prefix).get().officer == "officer"
    # The key works ...
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/audit-events").status_code == 200
    # ... and no admin page shows its secret again, only the prefix.
    secret = raw_key.split("_", 2)[2]
    for url in (
        f"{ADMIN}registry/apikey/",
        f"{ADMIN}registry/apikey/{key.pk}/change/",
        f"{ADMIN}registry/member/{member.pk}/change/",
    ):
        page = officer.get(url).content.decode()
        assert key.prefix in page and secret not in page


def test_a_key_needs_exactly_one_owner_and_fitting_scopes(world, officer):
    before = ApiKey.objects.count()
    both = officer.post(
        f"{ADMIN}registry/apikey/add/",
        {"member": world.carol.member.pk, "officer": world.officer.user.pk, "scopes": ["lookup"]},
    )
    assert both.status_code == 200 and both.context["form"].non_field_errors()
    wrong_scope = officer.post(
        f"{ADMIN}registry/apikey/add/",
        {"member": world.carol.member.pk, "scopes": ["compliance"]},
        follow=True,
    )
    assert any("may carry only" in m for m in messages_of(wrong_scope))
    assert ApiKey.objects.count() == before


def test_an_officer_revokes_a_key(world, officer):
    key = ApiKey.objects.get(member=world.alice.member)

    response = officer.post(f"{ADMIN}registry/apikey/{key.pk}/revoke/", {})

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert events("api_key.revoked", object_id=key.prefix).get().officer == "officer"
    assert world.alice.get("/api/v1/audit-events").status_code == 401


def test_keys_are_never_edited_or_deleted_from_the_admin(world, officer):
    key = ApiKey.objects.get(member=world.alice.member)
    assert (
        officer.post(f"{ADMIN}registry/apikey/{key.pk}/change/", {"name": "x"}).status_code == 403
    )
    assert (
        officer.post(f"{ADMIN}registry/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert ApiKey.objects.filter(pk=key.pk, name="").exists()

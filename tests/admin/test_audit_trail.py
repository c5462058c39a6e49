"""The audit trail in the admin: read-only for everyone, its browsing audited, filtered,
exported as CSV (audited too) and its chain verified."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from registry.actors import Actor
from registry.models import AuditEvent, Member
from registry.services.audit import audit_checkpoint, audit_seal, audit_verification_run
from tests.support.admin import ADMIN, make_superuser, messages_of, verified_client
from tests.support.audit import events
from tests.support.world import user_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["officer", "superuser"])
def test_nobody_can_change_or_delete_an_audit_event_from_the_admin(world, who):
    client = verified_client(make_superuser() if who == "superuser" else world.officer.user)
    event = AuditEvent.objects.order_by("id").first()
    url = f"{ADMIN}registry/auditevent/"
    before = list(AuditEvent.objects.order_by("id").values())

    change_page = client.get(f"{url}{event.pk}/change/")
    changelist = client.get(url)

    assert change_page.status_code == 200  # it can be read ...
    assert 'name="_save"' not in change_page.content.decode()
    assert client.post(f"{url}{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert client.get(f"{url}{event.pk}/delete/").status_code == 403
    assert client.post(f"{url}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{url}add/").status_code == 403
    assert client.post(f"{url}add/", {"action": "forged"}).status_code == 403
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    bulk = client.post(
        url, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    # ... never changed (reading it added events of its own: who browsed, who opened what)
    assert list(AuditEvent.objects.filter(id__lte=before[-1]["id"]).order_by("id").values()) == (
        before
    )
    added = AuditEvent.objects.filter(id__gt=before[-1]["id"]).values_list("action", flat=True)
    assert set(added) == {"admin.audit_browsed", "admin.auditevent_viewed"}


def test_it_audits_browsing_the_audit_trail(world, officer):
    """Who read the trail, with which filters, and which event they opened, is on the trail
    too (the search text is left out: it may be a raw identifier)."""
    url = f"{ADMIN}registry/auditevent/"
    assert officer.get(f"{url}?action=member.suspended&q=13900000077").status_code == 200
    [browsed] = events("admin.audit_browsed")
    assert browsed.officer == "officer"
    assert browsed.details == {"filters": {"action": "member.suspended"}, "searched": True}

    opened = AuditEvent.objects.order_by("id").first()
    assert officer.get(f"{url}{opened.pk}/change/").status_code == 200
    [viewed] = events("admin.auditevent_viewed")
    assert (viewed.object_id, viewed.officer) == (str(opened.pk), "officer")


def test_the_audit_list_filters_by_actor_action_object_and_date(world, officer):
    member = world.alice.member
    officer.post(f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": "Fees."})
    url = f"{ADMIN}registry/auditevent/"

    def found(query: str) -> list[AuditEvent]:
        response = officer.get(url + query)
        assert response.status_code == 200, query
        return list(response.context["cl"].result_list)

    assert {e.action for e in found("?action=member.suspended")} == {"member.suspended"}
    assert {e.actor_type for e in found("?actor_type=officer")} == {"officer"}
    assert {e.officer for e in found("?q=officer&actor_type=officer")} == {"officer"}
    assert {e.object_id for e in found(f"?q={member.code}")} >= {member.code}
    assert {e.object_type for e in found("?object_type=api_key")} == {"api_key"}
    today = timezone.localdate()
    assert found(f"?created_at__gte={today}&created_at__lt={today + timedelta(days=1)}")
    assert found(f"?created_at__gte={today + timedelta(days=1)}") == []
    assert found(f"?created_at__lt={today}") == []


def test_the_audit_export_is_the_filtered_range_as_csv_and_is_itself_audited(world, officer):
    for code in ("ALICE_BANK", "BOB_LOANS"):
        member = Member.objects.get(code=code)
        officer.post(f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": "Fees."})
    today = timezone.localdate()

    response = officer.get(
        f"{ADMIN}registry/auditevent/export/?action=member.suspended&created_at__gte={today}"
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["action"], r["object_id"]) for r in rows] == [
        ("member.suspended", "ALICE_BANK"),
        ("member.suspended", "BOB_LOANS"),
    ]
    assert rows[0]["officer"] == "officer" and rows[0]["details"].startswith("{")
    exported = events("audit.exported").get()
    assert exported.details["count"] == 2
    assert exported.details["filters"]["action"] == "member.suspended"


def test_the_export_neutralises_spreadsheet_formulas(world, officer):
    user_model().objects.create_user(username="=HYPERLINK(1)", is_staff=True)
    from registry.services.audit import audit_record

    audit_record(
        actor=Actor.for_officer(user_model().objects.get(username="=HYPERLINK(1)")),
        action="test.formula",
    )
    response = officer.get(f"{ADMIN}registry/auditevent/export/?action=test.formula")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


def test_verify_chain_shows_an_intact_chain(world, officer):
    audit_seal()
    response = officer.get(f"{ADMIN}registry/auditevent/verify/")
    assert response.status_code == 200
    assert response.context["result"].ok
    assert "Intact" in response.content.decode()
    assert events("audit.verified").get().details["ok"] is True


def test_verify_chain_walks_from_the_checkpoint_an_earlier_run_verified(world, officer):
    audit_seal()
    anchor = audit_checkpoint(force=True)
    assert audit_verification_run(actor=Actor.system()).ok
    audit_seal()
    response = officer.get(f"{ADMIN}registry/auditevent/verify/")
    result = response.context["result"]
    assert result.ok and result.anchor_seq == anchor.seq
    assert f"after the checkpoint at seal {anchor.seq}" in response.content.decode()
    assert "verify_audit --full" in response.content.decode()


def test_verify_chain_names_the_first_edited_event(world, officer):
    audit_seal()
    victim = AuditEvent.objects.order_by("id")[2]
    with connection.cursor() as cursor:  # what only a database superuser could do
        cursor.execute("ALTER TABLE registry_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE registry_auditevent SET action = 'forged' WHERE id = %s", [victim.pk]
        )
        cursor.execute("ALTER TABLE registry_auditevent ENABLE TRIGGER USER")

    response = officer.get(f"{ADMIN}registry/auditevent/verify/")

    assert not response.context["result"].ok
    assert response.context["result"].first_bad_event_id == victim.pk
    assert f"Broken at event {victim.pk}" in response.content.decode()


def test_malformed_filters_get_an_answer_not_an_error_page(world, officer):
    for url in (
        "registry/auditevent/?created_at__gte=not-a-date",
        "registry/auditevent/?created_at__gte=2026-13-45",
        "registry/dispute/?queue=bogus",
        "registry/case/?q=%00%ff",
        "registry/case/?status__exact=nonsense",
    ):
        response = officer.get(ADMIN + url)
        assert response.status_code in (200, 302), url
    export = officer.get(
        f"{ADMIN}registry/auditevent/export/?created_at__gte=not-a-date", follow=True
    )
    assert export.status_code == 200
    assert any("nothing was exported" in m for m in messages_of(export))
    assert not events("audit.exported").exists()

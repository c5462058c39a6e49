"""Cases and categories in the admin: found by fingerprint (an audited search), read
(audited), never edited by hand, withdrawn on request; never a digest or token on a page."""

import pytest

from registry.models import Case, CaseIdentifier, Category
from tests.support.admin import ADMIN, messages_of
from tests.support.audit import events
from tests.support.factories import listed_case

pytestmark = pytest.mark.django_db


def test_cases_are_found_by_member_reference_category_status_and_fingerprint(world, officer):
    case, _ = listed_case(world, reference="FIND-ME-1", category="money_mule")
    other, _ = listed_case(world, party=world.bob, reference="OTHER-2")
    fingerprint = CaseIdentifier.objects.get(case_id=case["id"]).fingerprint
    url = f"{ADMIN}registry/case/"

    def found(query: str) -> set[str]:
        response = officer.get(url + query)
        assert response.status_code == 200
        return {str(c.pk) for c in response.context["cl"].result_list}

    assert found(f"?q={fingerprint}") == {case["id"]}
    assert found("?q=FIND-ME") == {case["id"]}
    assert found(f"?q={case['id']}") == {case["id"]}
    assert found("?q=BOB_LOANS") == {other["id"]}
    assert found("?category__code__exact=money_mule") == {case["id"]}
    assert found(f"?member__id__exact={world.bob.member.pk}") == {other["id"]}
    assert {case["id"], other["id"]} <= found("?status__exact=active")
    assert found("?status__exact=withdrawn") == set()


def test_it_audits_a_search_of_the_cases_by_fingerprint(world, officer):
    """ "Is this person listed?" asked in the admin by fingerprint is a lookup: it leaves an
    event naming the officer and the fingerprint (a free-text search leaves one without the
    text, which may be a raw identifier)."""
    case, _ = listed_case(world)
    fingerprint = CaseIdentifier.objects.get(case_id=case["id"]).fingerprint

    assert officer.get(f"{ADMIN}registry/case/?q={fingerprint}").status_code == 200
    [event] = events("admin.cases_searched", object_type="fingerprint")
    assert (event.object_id, event.officer, event.actor_type) == (fingerprint, "officer", "officer")

    assert officer.get(f"{ADMIN}registry/case/?q=13900000077").status_code == 200
    [text] = events("admin.cases_searched", object_type="case")
    assert text.details == {"by": "text"} and "13900000077" not in str(text.details)
    officer.get(f"{ADMIN}registry/case/")  # no search: nothing more
    assert events("admin.cases_searched").count() == 2


def test_no_field_of_a_case_is_editable_by_hand(world, officer):
    case, _ = listed_case(world)
    url = f"{ADMIN}registry/case/{case['id']}/"

    page = officer.get(url + "change/")

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert officer.post(url + "change/", {"reference": "EDITED"}).status_code == 403
    assert officer.post(url + "delete/", {"post": "yes"}).status_code == 403
    assert officer.get(f"{ADMIN}registry/case/add/").status_code == 403
    assert Case.objects.get(pk=case["id"]).reference == case["reference"]


def test_an_officer_withdraws_a_case_on_the_members_written_request(world, officer):
    case, _ = listed_case(world)

    response = officer.post(
        f"{ADMIN}registry/case/{case['id']}/withdraw/",
        {"reason": "Letter from Alice Bank, ref. AB-2026-113."},
    )

    assert response.status_code == 302, messages_of(response)
    assert Case.objects.get(pk=case["id"]).status == "withdrawn"
    assert not CaseIdentifier.objects.filter(case_id=case["id"]).exists()
    assert events("case.withdrawn", object_id=case["id"]).get().officer == "officer"


def test_an_officer_sets_a_categorys_retention_through_the_service(world, officer):
    url = f"{ADMIN}registry/category/money_mule/change/"

    response = officer.post(url, {"retention_days": 730})

    assert response.status_code == 302
    assert Category.objects.get(pk="money_mule").retention_days == 730
    event = events("category.retention_changed", object_id="money_mule").get()
    assert event.details["to_days"] == 730 and event.officer == "officer"
    too_long = officer.post(url, {"retention_days": 2000})
    assert too_long.status_code == 200
    assert Category.objects.get(pk="money_mule").retention_days == 730


def test_nobody_sees_a_digest_or_token_anywhere_in_the_case_pages(world, officer):
    case, ident = listed_case(world)
    row = CaseIdentifier.objects.get(case_id=case["id"])
    for url in (
        f"registry/case/{case['id']}/change/",
        "registry/case/",
        f"registry/case/?q={row.fingerprint}",
    ):
        html = officer.get(ADMIN + url).content.decode()
        assert ident["token"] not in html and bytes(row.digest).hex() not in html
    case_page = officer.get(f"{ADMIN}registry/case/{case['id']}/change/").content.decode()
    assert row.fingerprint in case_page  # the fingerprint is what people see instead


def test_an_officer_reading_a_case_leaves_an_audit_event(world, officer):
    case, _ident = listed_case(world)
    response = officer.get(f"{ADMIN}registry/case/{case['id']}/change/")
    assert response.status_code == 200
    [event] = events("admin.case_viewed", object_id=case["id"])
    assert event.actor_type == "officer" and event.officer == world.officer.user.username
    officer.get(f"{ADMIN}registry/case/")  # the list alone reads no one case
    assert events("admin.case_viewed").count() == 1

"""Rings in the officers' admin, in Chinese: the list by size and by growth with its filters and
search, the ring's page with its SVG graph (member code, category and date on each case, kind
and fingerprint on each link, never a digest), the audit event of opening it, who may see it,
and that no member ever sees a ring through the API.

The browser walk-through: tests/test_rings_browser.py."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import AuditEvent, Case, CaseIdentifier, Ring
from tests.support.admin import ADMIN, make_auditor, verified_client
from tests.support.endpoints import resolved_endpoints, served_operations
from tests.support.rings import device, phone, report, ring_of, run_ring_tasks
from tests.support.world import make_member, user_model

pytestmark = pytest.mark.django_db

RINGS = f"{ADMIN}registry/ring/"


@pytest.fixture
def officer_zh(world):
    return verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")


def three_rings(world):
    """A ring of 4 (3 members) that grew this week, a ring of 3 reported 40 days ago, and a
    pair."""
    dave = make_member("DAVE_FINANCE")
    p, d = phone(), device(11)
    big = [
        report(world.alice, p, category="money_mule"),
        report(world.bob, p, d),
        report(world.carol, d),
        report(dave, d),
    ]
    q = phone()
    old = [report(world.alice, q), report(world.bob, q), report(world.carol, q)]
    Case.objects.filter(pk__in=old).update(created_at=timezone.now() - timedelta(days=40))
    r = phone()
    pair = [report(world.alice, r), report(world.carol, r)]
    run_ring_tasks()
    from registry.services.rings import rings_rebuild

    rings_rebuild()  # the growth figures as of now (the old ring's cases were dated back)
    return ring_of(big[0]), ring_of(old[0]), ring_of(pair[0]), big


def listed(response) -> list[int]:
    return [ring.pk for ring in response.context["cl"].result_list]


def test_it_lists_rings_largest_first_and_by_growth(world, officer_zh):
    big, old, pair, _ = three_rings(world)

    by_size = officer_zh.get(RINGS)
    by_growth = officer_zh.get(RINGS, {"o": "-6"})  # the "new cases in 7 days" column

    assert by_size.status_code == 200
    assert listed(by_size) == [big.pk, old.pk, pair.pk]
    assert listed(by_growth)[0] == big.pk and listed(by_growth)[-1] == old.pk
    html = by_size.content.decode()
    assert "团伙" in html and "近 7 天新增案件" in html and "DAVE_FINANCE" in html


def test_it_filters_rings_by_size_growth_members_and_member(world, officer_zh):
    big, old, pair, _ = three_rings(world)
    dave_pk = big.memberships.filter(case__member__code="DAVE_FINANCE").get().case.member_id

    assert listed(officer_zh.get(RINGS, {"size": "2"})) == [pair.pk]
    assert listed(officer_zh.get(RINGS, {"size": "3-5"})) == [big.pk, old.pk]
    assert listed(officer_zh.get(RINGS, {"growth": "none"})) == [old.pk]
    assert listed(officer_zh.get(RINGS, {"growth": "7d"})) == [big.pk, pair.pk]
    assert listed(officer_zh.get(RINGS, {"members": "3+"})) == [big.pk, old.pk]
    assert listed(officer_zh.get(RINGS, {"member": str(dave_pk)})) == [big.pk]


def test_it_finds_a_ring_by_number_member_code_and_case_id_tail(world, officer_zh):
    big, _old, pair, cases = three_rings(world)
    tail = cases[2].rsplit("-", 1)[-1]

    assert listed(officer_zh.get(RINGS, {"q": f"#{pair.pk}"})) == [pair.pk]
    assert listed(officer_zh.get(RINGS, {"q": "dave_finance"})) == [big.pk]
    assert listed(officer_zh.get(RINGS, {"q": tail})) == [big.pk]


def test_the_ring_page_draws_the_graph_in_chinese_and_audits_the_opening(world, officer_zh):
    big, _old, _pair, cases = three_rings(world)

    response = officer_zh.get(f"{RINGS}{big.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    svg = re.search(r'<svg [^>]*id="ring-graph".*?</svg>', html, re.S).group(0)
    assert "<script" not in html.split('id="content-main"')[1]
    for code in ("ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT", "DAVE_FINANCE"):
        assert code in svg
    assert "钱骡（资金中转）" in svg  # money_mule, by its Chinese name
    assert "身份盗用" in svg
    assert "手机号码" in svg and "设备 IMEI" in svg
    for case_id in cases:
        assert f'href="/admin/registry/case/{case_id}/change/"' in svg
    fingerprints = set(
        CaseIdentifier.objects.filter(case_id__in=cases).values_list("fingerprint", flat=True)
    )
    shared = {fp for fp in fingerprints if fp in svg}
    assert len(shared) == 2  # the phone and the device, on their links
    for digest in CaseIdentifier.objects.filter(case_id__in=cases).values_list("digest", flat=True):
        assert bytes(digest).hex() not in html
    assert svg.count('class="ring-node"') == 4
    assert svg.count('class="ring-link"') == 4  # a-b (phone), b-c, b-d, c-d (device)

    event = AuditEvent.objects.filter(action="admin.ring_viewed").latest("id")
    assert (event.object_type, event.object_id) == ("ring", str(big.pk))
    assert event.officer == world.officer.user.get_username()
    assert event.details == {"size": 4, "members": 4}


def test_the_graph_is_the_same_drawing_every_time(world, officer_zh):
    big, *_ = three_rings(world)

    def svg():
        html = officer_zh.get(f"{RINGS}{big.pk}/change/").content.decode()
        return re.search(r'<svg [^>]*id="ring-graph".*?</svg>', html, re.S).group(0)

    assert svg() == svg()


def test_auditors_see_rings_and_nobody_changes_one(world, officer_zh):
    big, *_ = three_rings(world)
    auditor = verified_client(make_auditor())

    assert auditor.get(RINGS).status_code == 200
    assert auditor.get(f"{RINGS}{big.pk}/change/").status_code == 200
    assert officer_zh.get(f"{RINGS}add/").status_code == 403
    assert officer_zh.post(f"{RINGS}{big.pk}/change/", {"size": 1}).status_code in (403, 405)
    assert officer_zh.get(f"{RINGS}{big.pk}/delete/").status_code == 403
    assert Ring.objects.get(pk=big.pk).size == 4


def test_staff_without_the_ring_permission_do_not_see_rings(world):
    big, *_ = three_rings(world)
    clerk = user_model().objects.create_user(username="clerk", is_staff=True)
    client = verified_client(clerk)

    assert client.get(RINGS).status_code == 403
    assert client.get(f"{RINGS}{big.pk}/change/").status_code == 403
    assert not AuditEvent.objects.filter(action="admin.ring_viewed").exists()


def test_members_never_see_rings_through_the_api(world):
    big, _old, _pair, cases = three_rings(world)

    # No API route is about rings...
    assert not any("ring" in name for name, _method in resolved_endpoints())
    assert not any("ring" in path for _method, path in served_operations())
    # ...the member's own case says nothing of one...
    body = world.alice.get(f"/api/v1/cases/{cases[0]}").json()
    assert "ring" not in str(body).lower()
    # ...and a member's key opens no admin page.
    for path in (RINGS, f"{RINGS}{big.pk}/change/"):
        response = world.alice.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not AuditEvent.objects.filter(action="admin.ring_viewed").exists()


def test_a_case_page_links_to_its_ring(world, officer_zh):
    big, _old, _pair, cases = three_rings(world)
    alone = report(world.alice, phone())

    in_ring = officer_zh.get(f"{ADMIN}registry/case/{cases[0]}/change/").content.decode()
    outside = officer_zh.get(f"{ADMIN}registry/case/{alone}/change/").content.decode()

    assert f'href="{RINGS}{big.pk}/change/" id="case-ring"' in in_ring
    assert f"团伙 #{big.pk}（4 个案件）" in in_ring
    assert 'id="case-ring"' not in outside


def test_the_audit_event_of_opening_a_ring_links_to_it(world, officer_zh):
    big, *_ = three_rings(world)
    officer_zh.get(f"{RINGS}{big.pk}/change/")
    event = AuditEvent.objects.filter(action="admin.ring_viewed").latest("id")

    html = officer_zh.get(f"{ADMIN}registry/auditevent/{event.pk}/change/").content.decode()

    assert f'href="{RINGS}{big.pk}/change/"' in html
    assert "已在管理后台打开团伙" in html

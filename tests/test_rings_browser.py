"""Rings in a real headless Chromium, in Chinese, at 1400 px: an officer finds the largest ring
from the desk, opens its graph (drawn on the server, no script), follows a case from it, and
the opening is on the audit trail. Screenshots in var/screenshots/rings-*.png.

The same through Django's test client: tests/test_rings_admin.py."""

import shutil

import pytest

from registry.models import AuditEvent, Ring
from registry.services.rings import rings_rebuild
from tests.support.browser import CHROMIUM, fits, screenshot, sign_in
from tests.support.rings import device, phone, report
from tests.support.world import make_member

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


@pytest.fixture
def page(chinese_page):
    return chinese_page  # zh-CN, 1400 px (tests/support/browser.py)


def shot(page, name: str, full: bool = False) -> None:
    screenshot(page, f"rings-{name}", full=full)


def some_rings(world) -> list[str]:
    """Pairs of cases, and one ring of six cases of four members (returned)."""
    for _ in range(4):
        shared = phone()
        report(world.alice, shared)
        report(world.carol, shared)
    dave = make_member("DAVE_FINANCE")
    p, d, e = phone(), device(31), device(32)
    largest = [
        report(world.alice, p, category="money_mule"),
        report(world.bob, p, d),
        report(world.carol, d, category="synthetic_identity"),
        report(dave, d, e),
        report(world.alice, e, category="forged_documents"),
        report(world.bob, e),
    ]
    rings_rebuild()  # no worker runs here: the daily job builds the table
    return largest


def test_an_officer_finds_the_largest_ring_and_opens_its_graph(world, live_server, page):
    largest = some_rings(world)
    sign_in(page, live_server.url, world.officer.user)

    page.click("tr.model-ring th a")  # 团伙, in the desk's list
    page.wait_for_selector("#result_list")
    assert fits(page, "#result_list")
    assert "7 天内新增案件" in page.inner_text("#result_list thead")
    first = page.locator("#result_list tbody tr").first
    assert first.locator("td.field-size").inner_text() == "6"
    shot(page, "list")

    first.locator("th a").click()
    page.wait_for_selector("#ring-graph")
    ring = Ring.objects.get(size=6)
    assert page.inner_text("#ring-size") == "6"
    graph = page.locator("#ring-graph")
    assert graph.locator("a.ring-node").count() == 6
    labels = page.eval_on_selector("#ring-graph", "e => e.textContent")
    for text in ("DAVE_FINANCE", "钱骡（资金中转）", "合成身份", "手机号码", "设备 IMEI"):
        assert text in labels, text
    assert fits(page, "#ring-graph")
    assert page.evaluate("document.scripts.length") == page.evaluate(
        "[...document.scripts].filter(s => !s.closest('#content-main')).length"
    )
    shot(page, "graph", full=True)

    event = AuditEvent.objects.filter(action="admin.ring_viewed").latest("id")
    assert (event.object_type, event.object_id) == ("ring", str(ring.pk))

    graph.locator("a.ring-node").first.click()
    page.wait_for_selector("#content-main")
    assert "/admin/registry/case/" in page.url
    assert any(case_id in page.url for case_id in largest)
    assert page.inner_text("#case-ring") == f"团伙 #{ring.pk}（6 个案件）"

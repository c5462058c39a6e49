"""Member quality and the rest of issue 19's friction list in a real headless Chromium, in
Chinese, at 1400 px: an officer sees which members report poorly (dashboard tile, league
table sorted by each metric in both windows, the member's page beside the consortium median,
the flag on the member list), reads an audit event's details in words, and downloads a
subject-access file in words. Screenshots in var/screenshots/quality-*.png.

The same through Django's test client: tests/test_member_quality.py and
tests/test_officer_desk_more.py."""

import csv
import io
import shutil
from pathlib import Path

import pytest
from django.utils import timezone

from registry.models import AuditEvent
from tests.support.browser import CHROMIUM, fits, screenshot, sign_in
from tests.support.factories import disputed_case, listed_case, lookup
from tests.support.quality import quality_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


@pytest.fixture
def page(chinese_page):
    return chinese_page  # zh-CN, 1400 px (tests/support/browser.py)


def shot(page, name: str) -> None:
    screenshot(page, f"quality-{name}", full=True)


def league_codes(page) -> list[str]:
    return page.locator("#quality-league tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.member)"
    )


def test_an_officer_sees_which_members_report_poorly(world, live_server, page):
    quality_world(world, timezone.now())
    sign_in(page, live_server.url, world.officer.user)

    # The dashboard's tile counts the flagged members and opens them.
    tile = page.locator("#tile-quality")
    assert tile.locator(".registry-tile-number").inner_text() == "1"
    assert "报送质量待审查" in tile.inner_text()
    shot(page, "dashboard")
    tile.click()
    page.wait_for_selector("#quality-league")
    assert league_codes(page) == ["ALICE_BANK"]
    reasons = page.inner_text("#quality-league .registry-quality-reasons")
    assert "90 天：撤回比例为 40.0%，超过上限 20.0%" in reasons
    assert "12 个月：已决争议中被支持的比例为 60.0%，超过上限 50.0%" in reasons
    shot(page, "flagged")

    # Every member, sorted by a metric, one window then the other.
    page.click("#quality-windows >> text=全部成员机构")
    page.wait_for_selector("#quality-league")
    assert sorted(league_codes(page)) == ["ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT"]
    assert "联盟中位数" in page.inner_text("#quality-median")
    page.click("#quality-league thead th.column-withdrawn_share a")  # worst first
    page.wait_for_selector("#quality-league th.column-withdrawn_share.sorted")
    assert league_codes(page) == ["ALICE_BANK", "BOB_LOANS", "CAROL_CREDIT"]
    assert page.locator("#quality-league tbody tr").first.locator("td").nth(1).inner_text() == (
        "40.0%"
    )
    page.click("#quality-league thead th.column-cases_reported a")  # fewest first
    page.wait_for_selector("#quality-league th.column-cases_reported.sorted")
    assert league_codes(page) == ["CAROL_CREDIT", "BOB_LOANS", "ALICE_BANK"]
    page.click("#quality-windows >> text=12 个月")
    page.wait_for_selector("#quality-league")
    assert page.locator("#quality-windows strong", has_text="12 个月").count() == 1
    alice = page.locator("#quality-league tbody tr[data-member=ALICE_BANK]")
    assert alice.locator("td").nth(0).inner_text() == "20"  # cases over 12 months
    assert alice.locator("td").nth(1).inner_text() == "25.0%"
    assert fits(page, "#quality-league")
    shot(page, "league-12-months")

    # The member's page: each metric beside the consortium median, and why it is flagged.
    alice.locator("a").first.click()
    page.wait_for_selector("#member-quality")
    assert "需要审查" in page.inner_text("#member-quality-flag")
    withdrawn = page.locator("#member-quality tr[data-metric=withdrawn_share] td")
    assert withdrawn.all_inner_texts()[1:] == ["40.0%", "20.0%", "25.0%", "12.5%"]
    days = page.locator("#member-quality tr[data-metric=median_response_days] td")
    assert days.all_inner_texts()[1:] == ["3.5", "3.5", "6.5", "6.5"]
    page.locator("#member-quality").scroll_into_view_if_needed()
    shot(page, "member")

    # The member list flags it too, and the sidebar leads to the table.
    page.goto(f"{live_server.url}/admin/registry/member/")
    flagged = page.locator("#result_list tr", has=page.locator(".registry-quality-flag"))
    assert flagged.count() == 1 and "ALICE_BANK" in flagged.inner_text()
    assert fits(page, "#result_list")
    shot(page, "member-list")
    page.click("#nav-sidebar >> text=成员机构报送质量")
    page.wait_for_selector("#quality-league")


def test_audit_details_and_the_subject_access_file_read_in_words(world, live_server, page):
    _, _, dispute = disputed_case(world)
    case, ident = listed_case(world)
    lookup(world.bob, [ident], purpose="fraud_investigation")
    filed = AuditEvent.objects.get(action="dispute.filed", object_id=dispute["id"])
    sign_in(page, live_server.url, world.officer.user)

    page.goto(f"{live_server.url}/admin/registry/auditevent/{filed.pk}/change/")
    details = page.inner_text("dl.registry-details")
    assert "原因" in details and "身份被盗用" in details and "手机号码" in details
    assert "identity_stolen" not in details and "identifier_kind" not in details
    shot(page, "audit-event")

    page.click("#nav-sidebar >> text=个人信息查阅")
    page.wait_for_selector("#subject-access-form")
    page.fill("input[name=token]", ident["token"])
    with page.expect_download() as download:
        page.click("#download-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header[0] == "记录" and {row[0] for row in rows} == {"案件", "查询"}
    reported = next(row for row in rows if row[0] == "案件")
    assert (
        reported[1] == case["id"] and reported[5] == "身份盗用" and reported[3].endswith("+08:00")
    )
    assert next(row for row in rows if row[0] == "查询")[4] == "欺诈调查"

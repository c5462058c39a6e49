"""The compliance officers' admin in a real headless Chromium (Debian's `chromium`, driven
by Playwright), against pytest-django's live server: an officer signs in with password and
TOTP code, decides a dispute from the queue, issues an API key, and reads the dashboard in
Chinese (by the browser's language and by the switch). A screenshot of the Chinese dashboard
is kept in var/screenshots/ for people to look at."""

import json
import shutil
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import ApiKey, Case, Dispute, Member
from tests.support.admin import RATIONALE
from tests.support.browser import CHROMIUM, SCREENSHOTS, sign_in
from tests.support.factories import disputed_case, listed_case
from tests.support.jobs_data import make_lookup_log

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


def seed_activity(world) -> None:
    """Thirty days of lookups with some hits, so the charts have something to show."""
    now = timezone.now()
    for days_ago in range(30):
        for n in range((days_ago * 7) % 11 + 2):
            member = (world.bob, world.carol, world.alice)[n % 3].member
            lookup = make_lookup_log(member, at=now - timedelta(days=days_ago, minutes=n))
            if n % 4 == 0:
                type(lookup).objects.filter(pk=lookup.pk).update(match_count=1)
    for category in ("money_mule", "account_takeover", "identity_theft", "identity_theft"):
        listed_case(world, category=category)


def test_an_officer_signs_in_with_totp_decides_a_dispute_and_issues_a_key(
    world, live_server, browser_page
):
    page = browser_page
    case, _ident, dispute = disputed_case(world)
    _, _, overdue = disputed_case(world)
    Dispute.objects.filter(pk=overdue["id"]).update(due_at=timezone.now() - timedelta(days=1))

    sign_in(page, live_server.url, world.officer.user)

    # The queue: sorted by deadline, the overdue dispute first and highlighted.
    page.click("#tile-undecided")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator(".registry-overdue").count() == 1
    assert rows.nth(1).locator(".registry-due").count() == 1
    # Open the other dispute's case file and decide it.
    rows.nth(1).locator("th a, td a").first.click()
    page.wait_for_selector("#decision-form")
    assert case["reference"] in page.inner_text("#content")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-dispute-case-file.png"), full_page=True)
    page.check("input[name=outcome][value=upheld]")
    page.fill("textarea[name=rationale]", RATIONALE)
    page.click("#decide-button")
    # Upholding removes the case: a summary to confirm comes first.
    page.wait_for_selector("#confirm-summary")
    page.click("#confirm-button")
    page.wait_for_selector(".messagelist .success")
    assert "Upheld" in page.inner_text(".messagelist")
    assert Dispute.objects.get(pk=dispute["id"]).status == "upheld"
    assert Case.objects.get(pk=case["id"]).status == "removed"
    # Back in the queue only the overdue dispute is left.
    assert page.locator("#result_list tbody tr").count() == 1

    # Issue a key for a member: shown once.
    member = Member.objects.get(code="CAROL_CREDIT")
    page.goto(f"{live_server.url}/admin/registry/member/{member.pk}/change/")
    page.click("text=Issue API key")
    page.wait_for_selector("input[name=scopes]")
    page.uncheck("input[name=scopes][value=dispute]")
    page.fill("input[name=name]", "scoring system")
    page.click("input[type=submit][name=_confirm]")
    page.wait_for_selector("#issued-key")
    raw_key = page.input_value("#issued-key")
    key = ApiKey.objects.get(prefix=raw_key.split("_")[1])
    assert key.member == member and sorted(key.scopes) == ["lookup", "submit"]
    request = urllib.request.Request(  # noqa: S310 - the live server on loopback
        f"{live_server.url}/api/v1/audit-events", headers={"Authorization": f"Bearer {raw_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200 and "results" in json.loads(response.read())
    page.click("text=Done: I have copied the key")
    page.wait_for_selector("#content-main")
    assert raw_key.split("_", 2)[2] not in page.content()
    assert key.prefix in page.content()

    # The language switch: the dashboard in Chinese.
    page.goto(f"{live_server.url}/admin/")
    page.select_option("#language-select", "zh-hans")
    page.wait_for_selector("html[lang=zh-hans]")
    assert "合规工作台" in page.inner_text("#content")
    assert "每日查询与命中" in page.inner_text("#dashboard")


@pytest.mark.parametrize("browser_page", ["zh-CN"], indirect=True)
def test_the_dashboard_reads_in_chinese_for_a_chinese_browser(world, live_server, browser_page):
    page = browser_page
    seed_activity(world)
    _, _, overdue = disputed_case(world)
    Dispute.objects.filter(pk=overdue["id"]).update(due_at=timezone.now() - timedelta(hours=5))
    disputed_case(world)

    page.goto(f"{live_server.url}/admin/login/")
    assert page.get_attribute("html", "lang") == "zh-hans"
    assert "验证码" in page.inner_text("#login-form")
    sign_in(page, live_server.url, world.officer.user)

    dashboard = page.inner_text("#dashboard")
    for text in (
        "待决争议",
        "逾期争议",
        "每日查询与命中",
        "各类别新增案件",
        "查询量最高的成员",
        "任务运行状况",
    ):
        assert text in dashboard, text
    assert page.locator("#chart-lookups rect.registry-bar-lookups").count() == 30
    assert page.locator("#chart-categories .registry-hbar").count() == 7
    assert page.inner_text("#tile-overdue .registry-tile-number") == "1"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "admin-dashboard-zh-hans.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # The queue reads in Chinese too, with the time left in Chinese units.
    page.click("#tile-overdue")
    page.wait_for_selector("#result_list")
    assert "已逾期 5 小时" in page.inner_text("#result_list")
    page.screenshot(path=str(SCREENSHOTS / "admin-dispute-queue-zh-hans.png"), full_page=True)

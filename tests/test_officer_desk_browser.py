"""The officers' desk without friction (issue 19) in a real headless Chromium, in Chinese, at
1400 px: a day's work with 30 cases, 3 disputes and 2 members. Each page is kept as a
screenshot in var/screenshots/desk-*.png for people to look at.

The same items through Django's test client: tests/test_officer_desk.py."""

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import ApiKey, AuditEvent, Case, Dispute, JobRun, Member
from tests.support.abuse import refuse
from tests.support.admin import code_for, device_of
from tests.support.browser import CHROMIUM, fits, screenshot, sign_in
from tests.support.factories import disputed_case, listed_case
from tests.support.jobs_data import make_lookup_log
from tests.support.world import OFFICER_PASSWORD

RATIONALE = "The subject's police report matches the dates of the application."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


@pytest.fixture
def page(chinese_page):
    return chinese_page  # zh-CN, 1400 px (tests/support/browser.py)


def shot(page, name: str) -> None:
    screenshot(page, f"desk-{name}", full=False)


def a_day_of_work(world):
    """30 cases, 3 disputes (one answered, one overdue), as in the issue's trial."""
    cases = [listed_case(world)[0] for _ in range(27)]
    case, _, waiting = disputed_case(world)
    _, _, answered = disputed_case(world)
    _, _, overdue = disputed_case(world)
    world.alice.post(
        f"/api/v1/disputes/{answered['id']}/response",
        {"position": "maintain", "statement": "We hold the signed contract."},
    )
    Dispute.objects.filter(pk=overdue["id"]).update(due_at=timezone.now() - timedelta(hours=3))
    return [*cases, case], waiting, answered, overdue


def test_ids_can_be_told_apart_and_found_and_the_case_links_its_records(world, live_server, page):
    _cases, waiting, _answered, _overdue = a_day_of_work(world)
    sign_in(page, live_server.url, world.officer.user)

    page.goto(f"{live_server.url}/admin/registry/case/")
    shown = page.locator("#result_list td.field-short_id code, #result_list th.field-short_id code")
    tails = shown.all_inner_texts()
    assert len(tails) == len(set(tails)) >= 28
    assert fits(page, "#result_list")
    shot(page, "cases")
    page.fill("#searchbar", tails[3])
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_selector("#content-main")
    assert page.locator("a.historylink").count() == 0
    assert page.locator(".object-tools a", has_text="审计事件").count() == 1
    shot(page, "case")

    # The dispute desk: by id tail and by member name.
    tail = waiting["id"].rsplit("-", 1)[-1]
    page.goto(f"{live_server.url}/admin/registry/dispute/?queue=all")
    assert fits(page, "#result_list")
    page.fill("#searchbar", tail)
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_selector("#dispute-id")
    assert page.inner_text("#dispute-id") == waiting["id"]
    assert page.locator("a.historylink").count() == 0
    assert "争议已提交" in page.inner_text("#dispute-history")
    shot(page, "dispute")


def test_upholding_and_bulk_revocation_ask_for_a_second_look(world, live_server, page):
    _cases, waiting, _answered, _overdue = a_day_of_work(world)
    sign_in(page, live_server.url, world.officer.user)

    page.goto(f"{live_server.url}/admin/registry/dispute/{waiting['id']}/change/")
    page.check("input[name=outcome][value=upheld]")
    page.fill("textarea[name=rationale]", RATIONALE)
    page.click("#decide-button")
    page.wait_for_selector("#confirm-summary")
    assert "不可撤销" in page.inner_text("#confirm-summary")
    shot(page, "uphold-confirm")
    assert Dispute.objects.get(pk=waiting["id"]).status == "open"
    page.click("#confirm-button")
    page.wait_for_selector(".messagelist .success")
    assert Dispute.objects.get(pk=waiting["id"]).status == "upheld"
    assert Case.objects.get(pk=Dispute.objects.get(pk=waiting["id"]).case_id).status == "removed"

    alice = Member.objects.get(code="ALICE_BANK")
    page.goto(f"{live_server.url}/admin/registry/apikey/?member__id__exact={alice.pk}")
    assert fits(page, "#result_list")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "revoke_selected")
    page.click("button[name=index]")
    page.wait_for_selector("#keys-to-revoke")
    shot(page, "revoke-confirm")
    assert ApiKey.objects.filter(member=alice, revoked_at__isnull=True).exists()
    page.click("#confirm-button")
    page.wait_for_selector(".messagelist .success")
    assert not ApiKey.objects.filter(member=alice, revoked_at__isnull=True).exists()


def test_state_is_shown_suspension_overdue_and_the_responded_queue(world, live_server, page):
    _cases, _waiting, _answered, overdue = a_day_of_work(world)
    sign_in(page, live_server.url, world.officer.user)

    bob = Member.objects.get(code="BOB_LOANS")
    page.goto(f"{live_server.url}/admin/registry/member/{bob.pk}/suspend/")
    page.fill("textarea[name=rationale]", "Unpaid membership fees.")
    page.click("input[type=submit][name=_confirm]")
    page.wait_for_selector("#member-suspension")
    assert "officer" in page.inner_text("#member-suspension")
    assert "Unpaid membership fees." in page.inner_text("#suspension-reason")
    assert "随成员机构暂停" in page.inner_text("#member-keys")
    assert "使用中" not in page.inner_text("#member-keys")
    shot(page, "member-suspended")

    page.goto(f"{live_server.url}/admin/registry/dispute/{overdue['id']}/change/")
    assert "不会出现在查询结果中" in page.inner_text("#dispute-status")

    page.goto(f"{live_server.url}/admin/")
    page.click("#tile-due-soon")
    page.wait_for_selector("#changelist-filter")
    page.click("#changelist-filter >> text=已答复，待裁决")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert rows.first.locator(".registry-pill-responded").count() == 1
    shot(page, "responded-queue")


def test_words_not_codes_in_the_audit_trail_jobs_and_subject_access(world, live_server, page):
    a_day_of_work(world)
    start = timezone.now()
    for sealed in (0, 0, 0, 12):
        JobRun.objects.create(
            job="audit_seal",
            status="succeeded",
            started_at=start,
            finished_at=start,
            details={"sealed": sealed, "batches": 1, "lag_seconds": 0.4},
        )
    sign_in(page, live_server.url, world.officer.user)

    page.goto(f"{live_server.url}/admin/registry/auditevent/")
    trail = page.inner_text("#result_list")
    assert "案件已提交" in trail and "case.submitted" not in trail
    assert fits(page, "#result_list")
    shot(page, "audit")

    page.goto(f"{live_server.url}/admin/registry/jobrun/")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "审计日志封存" in page.inner_text("#result_list")
    shot(page, "jobs")

    # Subject access from the sidebar; a pasted phone number is not echoed.
    page.click("#nav-sidebar >> text=个人信息查阅")
    page.wait_for_selector("#subject-access-form")
    page.fill("input[name=token]", "13912345678")
    page.click("input[name=show]")
    page.wait_for_selector(".errorlist")
    assert page.input_value("input[name=token]") == ""
    shot(page, "subject-access")


def test_sign_in_speaks_chinese_when_codes_are_paused_and_is_audited(
    world, live_server, page, settings
):
    # django-otp pauses codes for factor × 2^(failures-1) seconds: at its default of 1 s a
    # loaded machine may take longer than that between the two attempts.
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    user = world.officer.user
    device = device_of(user)
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"
    for _ in range(2):
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", OFFICER_PASSWORD)
        page.fill("#id_otp_token", wrong)
        page.click("#login-form input[type=submit]")
        page.wait_for_selector(".errornote, .errorlist")
    assert "校验暂停" in page.inner_text("#content")
    shot(page, "login-paused")
    assert AuditEvent.objects.filter(action="officer.code_refused").count() == 2

    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    sign_in(page, live_server.url, user)

    assert AuditEvent.objects.filter(action="officer.signed_in", officer=user.username).exists()


def test_the_dashboard_due_soon_tile_and_the_usual_volume_of_a_throttled_member(
    world, live_server, page
):
    _cases, waiting, _answered, _overdue = a_day_of_work(world)
    Dispute.objects.filter(pk=waiting["id"]).update(due_at=timezone.now() + timedelta(hours=6))
    yesterday = timezone.now() - timedelta(days=1)
    for n in range(20):
        make_lookup_log(world.bob.member, at=yesterday - timedelta(minutes=n))
    refuse(world.bob)
    sign_in(page, live_server.url, world.officer.user)

    row = page.locator("#throttled-members tr", has_text="BOB_LOANS")
    assert f"{20 / 28:.1f}" in row.inner_text()
    shot(page, "dashboard")
    page.click("#tile-due-soon")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "即将到期" in page.inner_text("#changelist-filter")

"""The officers' desk without friction (issue 19), through Django's test client in Chinese:
ids an officer can tell apart and search, words instead of codes, a second look before the
irreversible, records that link, and state that is shown.

The browser walk-through of the same items is tests/test_officer_desk_browser.py."""

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import ApiKey, AuditEvent, Case, CaseIdentifier, Dispute, JobRun, Member
from tests.support.abuse import refuse
from tests.support.admin import (
    ADMIN,
    RATIONALE,
    code_for,
    decide_url,
    device_of,
    login,
    verified_client,
)
from tests.support.factories import (
    disputed_case,
    fresh_phone,
    identifier,
    listed_case,
    lookup,
    submit_case,
)
from tests.support.world import OFFICER_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer_zh(world):
    return verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")


def tail(pk) -> str:
    return str(pk).rsplit("-", 1)[-1]


# --- ids ----------------------------------------------------------------------------------------


def test_it_shows_case_ids_that_differ_and_finds_a_case_by_the_shown_part(world, officer_zh):
    cases = [listed_case(world)[0] for _ in range(3)]

    html = officer_zh.get(f"{ADMIN}registry/case/").content.decode()

    for case in cases:
        assert f"<code>{tail(case['id'])}</code>" in html
    # All made in the same second share their first 8 digits; the tail tells them apart.
    found = officer_zh.get(f"{ADMIN}registry/case/", {"q": tail(cases[1]["id"])})
    assert [str(c.pk) for c in found.context["cl"].result_list] == [cases[1]["id"]]


def test_it_does_not_keep_a_typed_phone_number_in_the_audit_trail_of_a_case_search(
    world, officer_zh
):
    officer_zh.get(f"{ADMIN}registry/case/", {"q": "13912345678"})

    search = AuditEvent.objects.filter(action="admin.cases_searched").latest("id")
    assert search.object_id == "" and "13912345678" not in str(search.details)


def test_the_dispute_desk_finds_a_dispute_by_its_id_tail_and_by_member_name(world, officer_zh):
    _, _, dispute = disputed_case(world)
    disputed_case(world)
    url = f"{ADMIN}registry/dispute/"

    by_tail = officer_zh.get(url, {"q": tail(dispute["id"])})
    by_whole_id = officer_zh.get(url, {"q": dispute["id"]})
    bob = Member.objects.get(code="BOB_LOANS")
    by_name = officer_zh.get(url, {"q": bob.name})

    assert [str(d.pk) for d in by_tail.context["cl"].result_list] == [dispute["id"]]
    assert [str(d.pk) for d in by_whole_id.context["cl"].result_list] == [dispute["id"]]
    assert len(by_name.context["cl"].result_list) == 2
    assert f"<code>{tail(dispute['id'])}</code>" in by_tail.content.decode()


def test_a_dispute_page_shows_its_own_id_and_links_instead_of_an_empty_history(world, officer_zh):
    case, _, dispute = disputed_case(world)
    ident = CaseIdentifier.objects.filter(case_id=case["id"]).first()
    other = Case.objects.exclude(pk=case["id"]).filter(identifiers__fingerprint=ident.fingerprint)
    html = officer_zh.get(f"{ADMIN}registry/dispute/{dispute['id']}/change/").content.decode()

    assert f'<code id="dispute-id">{dispute["id"]}</code>' in html
    assert "historylink" not in html and "该争议的审计事件" in html
    assert "含相同标识符的其他案件" in html
    for related in other:
        assert f"/admin/registry/case/{related.pk}/change/" in html
    # History in words, each event linking to itself.
    filed = AuditEvent.objects.get(action="dispute.filed", object_id=dispute["id"])
    assert f'/admin/registry/auditevent/{filed.pk}/change/">争议已提交</a>' in html
    assert "<code>dispute.filed</code>" not in html


# --- codes to words -----------------------------------------------------------------------------


def test_the_audit_trail_shows_actions_and_object_types_in_words_with_links(world, officer_zh):
    case, _ = listed_case(world)

    html = officer_zh.get(f"{ADMIN}registry/auditevent/", {"q": case["id"]}).content.decode()

    submitted = AuditEvent.objects.get(action="case.submitted", object_id=case["id"])
    assert f"/admin/registry/case/{case['id']}/change/" in html
    assert "case.submitted</td>" not in html
    page = officer_zh.get(f"{ADMIN}registry/auditevent/{submitted.pk}/change/").content.decode()
    assert f"/admin/registry/case/{case['id']}/change/" in page and "案件" in page


def test_the_audit_export_has_chinese_headers_local_times_and_counts_its_rows(world, officer_zh):
    listed_case(world)

    response = officer_zh.get(f"{ADMIN}registry/auditevent/export/")

    text = b"".join(response.streaming_content).decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert "操作" in header and "对象类型" in header and "action" not in header
    assert all(row[1].endswith("+08:00") for row in rows)
    exported = AuditEvent.objects.filter(action="audit.exported").latest("id")
    assert exported.details["count"] == len(rows)
    assert [r[7] for r in rows if r[6] == "case.submitted"] == ["案件已提交"]
    assert {r[2] for r in rows} <= {"成员", "合规专员", "系统"}
    assert {r[-1] for r in rows} <= {"是", "否"}


# --- a second look before the irreversible ------------------------------------------------------


def test_upholding_from_the_case_file_asks_for_confirmation_first(world, officer_zh):
    case, _, dispute = disputed_case(world)
    form = {"outcome": "upheld", "rationale": RATIONALE, "review": "1"}

    summary = officer_zh.post(decide_url(dispute["id"]), form)

    assert summary.status_code == 200
    html = summary.content.decode()
    assert 'id="confirm-form"' in html and "此操作不可撤销" in html
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    assert Case.objects.get(pk=case["id"]).status != "removed"

    confirmed = {**form, "confirmation": summary.context["confirmation"]}
    officer_zh.post(decide_url(dispute["id"]), confirmed)

    assert Dispute.objects.get(pk=dispute["id"]).status == "upheld"
    assert Case.objects.get(pk=case["id"]).status == "removed"


def test_rejecting_needs_no_confirmation(world, officer_zh):
    _, _, dispute = disputed_case(world)

    officer_zh.post(
        decide_url(dispute["id"]), {"outcome": "rejected", "rationale": RATIONALE, "review": "1"}
    )

    assert Dispute.objects.get(pk=dispute["id"]).status == "rejected"


def test_bulk_revocation_shows_the_keys_and_revokes_only_when_confirmed(world, officer_zh):
    keys = list(ApiKey.objects.filter(member__code="ALICE_BANK", revoked_at__isnull=True))
    selected = {"action": "revoke_selected", "_selected_action": [k.pk for k in keys]}

    summary = officer_zh.post(f"{ADMIN}registry/apikey/", selected)

    assert summary.status_code == 200
    html = summary.content.decode()
    assert 'id="keys-to-revoke"' in html and "此操作不可撤销" in html
    assert all(str(k) in html for k in keys)
    assert ApiKey.objects.filter(
        pk__in=[k.pk for k in keys], revoked_at__isnull=True
    ).count() == len(keys)

    token = summary.context["confirmation"]
    officer_zh.post(f"{ADMIN}registry/apikey/", {**selected, "confirmation": token})

    assert not ApiKey.objects.filter(pk__in=[k.pk for k in keys], revoked_at__isnull=True).exists()


# --- state that is shown ------------------------------------------------------------------------


def test_a_suspended_members_keys_show_as_suspended_with_who_and_when(world, officer_zh):
    alice = Member.objects.get(code="ALICE_BANK")
    officer_zh.post(f"{ADMIN}registry/member/{alice.pk}/suspend/", {"rationale": "Unpaid fees."})

    page = officer_zh.get(f"{ADMIN}registry/member/{alice.pk}/change/").content.decode()
    keys = officer_zh.get(f"{ADMIN}registry/apikey/", {"member__id__exact": alice.pk})

    assert 'id="member-suspension"' in page and "由 officer 于" in page
    assert "原因： Unpaid fees." in page
    alice.refresh_from_db()
    assert alice.suspension_reason == "Unpaid fees."
    event = AuditEvent.objects.filter(action="member.suspended").latest("id")
    assert event.details == {"rationale_length": len("Unpaid fees.")}
    assert "随成员机构暂停" in page and "使用中" not in page
    assert "随成员机构暂停" in keys.content.decode() and "使用中" not in keys.content.decode()


def test_reactivation_clears_the_reason_and_a_raw_identifier_is_refused(world, officer_zh):
    alice = Member.objects.get(code="ALICE_BANK")
    officer_zh.post(f"{ADMIN}registry/member/{alice.pk}/suspend/", {"rationale": "Unpaid fees."})
    officer_zh.post(f"{ADMIN}registry/member/{alice.pk}/reactivate/", {"rationale": "Paid."})
    alice.refresh_from_db()
    assert alice.status == "active" and alice.suspension_reason == ""

    refused = officer_zh.post(
        f"{ADMIN}registry/member/{alice.pk}/suspend/", {"rationale": "Call 13912345678."}
    )

    alice.refresh_from_db()
    assert refused.status_code == 200 and alice.status == "active"
    assert "13912345678" not in refused.content.decode()


def test_an_overdue_dispute_says_its_case_is_hidden_from_lookups(world, officer_zh):
    _, _, dispute = disputed_case(world)
    Dispute.objects.filter(pk=dispute["id"]).update(due_at=timezone.now())

    html = officer_zh.get(f"{ADMIN}registry/dispute/{dispute['id']}/change/").content.decode()

    assert 'id="hidden-from-lookups"' in html and "不会出现在查询结果中" in html


def test_the_desk_has_a_responded_queue_and_the_decided_queue_shows_when(world, officer_zh):
    _, _, waiting = disputed_case(world)
    _, _, answered = disputed_case(world)
    world.alice.post(
        f"/api/v1/disputes/{answered['id']}/response",
        {"position": "maintain", "statement": "We hold the signed contract."},
    )
    responded = officer_zh.get(f"{ADMIN}registry/dispute/", {"queue": "responded"})

    assert [str(d.pk) for d in responded.context["cl"].result_list] == [answered["id"]]
    assert "已答复，待裁决" in responded.content.decode()

    officer_zh.post(decide_url(waiting["id"]), {"outcome": "rejected", "rationale": RATIONALE})
    decided = officer_zh.get(f"{ADMIN}registry/dispute/", {"queue": "decided"}).content.decode()
    assert "column-decided_at" in decided


# --- records that link --------------------------------------------------------------------------


def test_a_members_page_links_to_its_cases_disputes_keys_and_audit_events(world, officer_zh):
    alice = Member.objects.get(code="ALICE_BANK")
    submit_case(world.alice)
    disputed_case(world)  # Bob disputes a case of Alice's

    html = officer_zh.get(f"{ADMIN}registry/member/{alice.pk}/change/").content.decode()

    assert f"/admin/registry/case/?member__id__exact={alice.pk}" in html
    assert f"filed_by__id__exact={alice.pk}" in html
    about = officer_zh.get(
        f"{ADMIN}registry/dispute/", {"queue": "all", "case__member__id__exact": alice.pk}
    )
    assert about.status_code == 200 and len(about.context["cl"].result_list) == 1
    assert f"/admin/registry/apikey/?member__id__exact={alice.pk}" in html
    assert f"/admin/registry/auditevent/?member__id__exact={alice.pk}" in html


# --- small but daily ----------------------------------------------------------------------------


def test_the_due_soon_tile_opens_the_disputes_due_soon_only(world, officer_zh):
    _, _, soon = disputed_case(world)
    _, _, later = disputed_case(world)
    Dispute.objects.filter(pk=soon["id"]).update(due_at=timezone.now() + timedelta(hours=5))
    Dispute.objects.filter(pk=later["id"]).update(due_at=timezone.now() + timedelta(days=25))

    dashboard = officer_zh.get(ADMIN).content.decode()
    queue = officer_zh.get(f"{ADMIN}registry/dispute/", {"queue": "due_soon"})

    assert 'href="/admin/registry/dispute/?queue=due_soon" id="tile-due-soon"' in dashboard
    assert [str(d.pk) for d in queue.context["cl"].result_list] == [soon["id"]]


def test_the_throttled_panel_counts_the_usual_volume_of_the_days_before_the_sweep(
    world, officer_zh, frozen_now
):
    now = frozen_now.current
    frozen_now.set(now - timedelta(days=2))  # inside the panel's 7 days, before the sweep
    for _ in range(20):
        lookup(world.bob, [identifier("phone", fresh_phone())])
    frozen_now.set(now)
    refuse(world.bob)

    rows = {row["code"]: row for row in officer_zh.get(ADMIN).context["dashboard"]["throttled"]}

    assert rows["BOB_LOANS"]["usual_per_day"] == round(20 / 28, 1)


def test_the_case_list_filters_categories_by_their_names(world, officer_zh):
    listed_case(world)

    html = officer_zh.get(f"{ADMIN}registry/case/").content.decode()
    panel = html[html.index('id="changelist-filter"') :]

    assert "身份盗用" in panel and ">identity_theft<" not in panel
    assert "category__code__exact=identity_theft" in panel


def test_subject_access_is_in_the_sidebar_not_beside_change_password(world, officer_zh):
    html = officer_zh.get(f"{ADMIN}registry/case/").content.decode()

    sidebar = html[html.index('id="nav-sidebar"') :]
    header = html[: html.index('id="nav-sidebar"')]
    assert "/admin/subject-access/" in sidebar and "/admin/subject-access/" not in header
    assert "/admin/subject-access/" in officer_zh.get(ADMIN).content.decode()


def test_subject_access_does_not_echo_a_pasted_phone_number(world, officer_zh):
    response = officer_zh.post(f"{ADMIN}subject-access/", {"kind": "phone", "token": "13912345678"})

    assert response.status_code == 200 and response.context["form"].errors["token"]
    assert "13912345678" not in response.content.decode()


def test_subject_access_shows_categories_in_words_and_ids_that_differ(world, officer_zh):
    case, ident = listed_case(world)

    html = officer_zh.post(
        f"{ADMIN}subject-access/", {"kind": "phone", "token": ident["token"]}
    ).content.decode()

    assert "身份盗用" in html and "identity_theft" not in html
    assert f"<code>{tail(case['id'])}</code>" in html


def test_the_job_list_hides_idle_sealing_runs_and_names_jobs_in_words(world, officer_zh):
    start = timezone.now()
    for sealed in (0, 0, 5):
        JobRun.objects.create(
            job="audit_seal",
            status="succeeded",
            started_at=start,
            finished_at=start,
            details={"sealed": sealed, "batches": 1, "lag_seconds": 0.0},
        )
    JobRun.objects.create(
        job="expiry", status="failed", started_at=start, details={"error": "boom"}
    )

    default = officer_zh.get(f"{ADMIN}registry/jobrun/")
    everything = officer_zh.get(f"{ADMIN}registry/jobrun/", {"runs": "all"})

    assert len(default.context["cl"].result_list) == 2
    assert len(everything.context["cl"].result_list) == 4
    html = default.content.decode()
    assert "审计日志封存" in html and "案件到期" in html and "已封存事件: 5" in html
    assert ">audit_seal<" not in html


def test_officers_sign_ins_and_refused_codes_are_audited_and_throttling_speaks_chinese(
    world, settings
):
    # A pause longer than a loaded machine takes between the two attempts (django-otp's
    # default factor is 1 s).
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device = device_of(world.officer.user)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"

    first = login(client, "officer", OFFICER_PASSWORD, wrong)
    second = login(client, "officer", OFFICER_PASSWORD, wrong)

    assert AuditEvent.objects.filter(action="officer.code_refused", object_id="officer").exists()
    assert "验证码" in first.content.decode()
    assert "校验暂停" in second.content.decode()
    assert "Verification temporarily disabled" not in second.content.decode()
    device.refresh_from_db()
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)

    login(client, "officer", OFFICER_PASSWORD, code_for(device, drift=1))

    assert AuditEvent.objects.filter(action="officer.signed_in", officer="officer").exists()


def test_a_refused_key_issue_answers_in_chinese_with_scopes_in_words(world, officer_zh):
    alice = Member.objects.get(code="ALICE_BANK")

    response = officer_zh.post(
        f"{ADMIN}registry/apikey/add/", {"member": alice.pk, "scopes": ["compliance"]}
    )

    html = response.content.decode()
    assert "该持有人的密钥只能具有以下权限范围" in html, html[html.find("errornote") - 200 :][:800]
    assert "dispute, lookup, submit" not in html

"""The rest of issue 19's friction list, through Django's test client in Chinese: the
subject-access CSV in words and Shanghai time, an audit event's details as a translated
key/value list, and the second look before the irreversible enforced by the server (a POST
made by hand upholds nothing and revokes nothing).

The browser walk-through: tests/test_member_quality_browser.py."""

import csv
import io
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import signing
from django.test import override_settings

from registry.admin.confirmations import REVOKE_SALT, revoke_token, uphold_token
from registry.models import ApiKey, AuditEvent, Case, CaseIdentifier, Dispute, Lookup, Member
from tests.support.admin import ADMIN, RATIONALE, decide_url, verified_client
from tests.support.factories import disputed_case, listed_case, lookup
from tests.support.monitoring import watch
from tests.support.world import make_officer

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def officer_zh(world):
    return verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")


# --- subject access CSV -------------------------------------------------------------------------


@override_settings(TIME_ZONE="UTC")  # the file is in Shanghai time whatever the server's zone
def test_it_writes_the_subject_access_csv_in_words_and_shanghai_time(world, officer_zh):
    case, ident = listed_case(world)
    lookup(world.bob, [ident], purpose="fraud_investigation")
    watch(world.carol, [ident])

    response = officer_zh.post(
        f"{ADMIN}subject-access/", {"kind": "phone", "token": ident["token"], "download": "1"}
    )

    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert header == [
        "记录",
        "ID",
        "成员",
        "时间",
        "目的",
        "类别",
        "状态",
        "确认日期",
        "到期日期",
        "当事人声明",
        "标识符类型",
        "指纹",
    ]
    by_record = {row[0]: row for row in rows}
    assert set(by_record) == {"案件", "查询", "监控"}
    reported = by_record["案件"]
    assert reported[1:3] == [case["id"], "ALICE_BANK"]
    assert reported[5:7] == ["身份盗用", "有效"] and reported[9] == "否"
    assert reported[10] == "手机号码"
    created = Case.objects.get(pk=case["id"]).created_at
    assert reported[3] == created.astimezone(SHANGHAI).isoformat()
    assert datetime.fromisoformat(reported[3]).utcoffset() == timedelta(hours=8)
    looked = by_record["查询"]
    assert looked[2] == "BOB_LOANS" and looked[4] == "欺诈调查"
    at = Lookup.objects.get(member=world.bob.member).created_at
    assert looked[3] == at.astimezone(SHANGHAI).isoformat() and looked[3].endswith("+08:00")
    assert by_record["监控"][2] == "CAROL_CREDIT" and by_record["监控"][4] == "贷后监控"
    codes = {"case", "lookup", "watch", "identity_theft", "active", "phone", "no"}
    assert not codes & {cell for row in rows for cell in row}
    assert ident["token"] not in response.content.decode("utf-8-sig")


# --- audit event details ------------------------------------------------------------------------


def test_an_audit_event_shows_its_details_as_a_translated_list(world, officer_zh):
    _, _, dispute = disputed_case(world)
    alice = Member.objects.get(code="ALICE_BANK")
    officer_zh.post(
        f"{ADMIN}registry/member/{alice.pk}/limit/",
        {"scope": "lookup", "per_minute": 100, "per_day": 5000},
    )
    filed = AuditEvent.objects.get(action="dispute.filed", object_id=dispute["id"])
    limit = AuditEvent.objects.filter(action="member.limit_set").latest("id")

    filed_page = officer_zh.get(f"{ADMIN}registry/auditevent/{filed.pk}/change/").content.decode()
    limit_page = officer_zh.get(f"{ADMIN}registry/auditevent/{limit.pk}/change/").content.decode()

    assert '<dl class="registry-details">' in filed_page
    assert "<dt>原因</dt><dd>身份被盗用</dd>" in filed_page
    assert "<dt>标识符类型</dt><dd>手机号码</dd>" in filed_page
    assert "<dt>陈述长度（字符）</dt>" in filed_page
    for key in ("identifier_kind", "identity_stolen", "statement_length", "&quot;reason&quot;"):
        assert key not in filed_page
    assert "<dt>权限范围</dt><dd>查询（每个标识符一个单位）</dd>" in limit_page
    assert "<dt>每分钟单位数</dt><dd>100</dd>" in limit_page
    assert "per_minute" not in limit_page


def test_the_audit_trail_shows_details_in_words_on_one_line(world, officer_zh):
    _, _, dispute = disputed_case(world)

    html = officer_zh.get(f"{ADMIN}registry/auditevent/", {"q": dispute["id"]}).content.decode()

    due = Dispute.objects.get(pk=dispute["id"]).due_at.astimezone(SHANGHAI)
    assert f"截止时间: {due:%Y-%m-%d %H:%M:%S}" in html  # a stored UTC time, shown local
    assert "case_id" not in html and "due_at" not in html


# --- upholding: the server requires the summary's confirmation ----------------------------------


def nothing_decided(dispute_id, case_id) -> bool:
    return (
        Dispute.objects.get(pk=dispute_id).status == "open"
        and Case.objects.get(pk=case_id).status == "disputed"
        and CaseIdentifier.objects.filter(case_id=case_id).exists()
        and not AuditEvent.objects.filter(action="dispute.decided", object_id=dispute_id).exists()
    )


def test_a_direct_post_to_uphold_shows_the_summary_and_changes_nothing(world, officer_zh):
    case, _, dispute = disputed_case(world)

    response = officer_zh.post(
        decide_url(dispute["id"]), {"outcome": "upheld", "rationale": RATIONALE}
    )

    assert response.status_code == 200 and 'id="confirm-form"' in response.content.decode()
    assert nothing_decided(dispute["id"], case["id"])


def test_a_token_for_another_dispute_officer_or_outcome_or_a_forged_one_upholds_nothing(
    world, officer_zh
):
    case, _, dispute = disputed_case(world)
    _, _, other = disputed_case(world)
    user = world.officer.user
    colleague = make_officer("li.na").user
    bad_tokens = [
        uphold_token(user, other["id"], "upheld"),
        uphold_token(colleague, dispute["id"], "upheld"),
        uphold_token(user, dispute["id"], "rejected"),
        uphold_token(user, dispute["id"], "upheld")[:-2] + "xx",
        signing.TimestampSigner(salt=REVOKE_SALT).sign_object(
            {"dispute": dispute["id"], "outcome": "upheld", "officer": user.pk}
        ),
        "1",
    ]

    for token in bad_tokens:
        response = officer_zh.post(
            decide_url(dispute["id"]),
            {"outcome": "upheld", "rationale": RATIONALE, "confirmation": token},
        )
        assert response.status_code == 200 and 'id="confirm-form"' in response.content.decode()
        assert nothing_decided(dispute["id"], case["id"])


def test_a_lapsed_confirmation_upholds_nothing(world, officer_zh, monkeypatch):
    case, _, dispute = disputed_case(world)
    summary = officer_zh.post(
        decide_url(dispute["id"]), {"outcome": "upheld", "rationale": RATIONALE}
    )
    token = summary.context["confirmation"]
    two_hours_later = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: two_hours_later)  # what signing reads

    response = officer_zh.post(
        decide_url(dispute["id"]),
        {"outcome": "upheld", "rationale": RATIONALE, "confirmation": token},
    )

    assert 'id="confirm-form"' in response.content.decode()
    assert "确认已失效或不匹配" in response.content.decode()
    assert nothing_decided(dispute["id"], case["id"])


def test_the_summarys_own_form_upholds(world, officer_zh):
    case, _, dispute = disputed_case(world)
    summary = officer_zh.post(
        decide_url(dispute["id"]), {"outcome": "upheld", "rationale": RATIONALE}
    )
    html = summary.content.decode()
    token = summary.context["confirmation"]
    assert f'name="confirmation" value="{token}"' in html

    officer_zh.post(
        decide_url(dispute["id"]),
        {"outcome": "upheld", "rationale": RATIONALE, "confirmation": token},
    )

    assert Dispute.objects.get(pk=dispute["id"]).status == "upheld"
    assert Case.objects.get(pk=case["id"]).status == "removed"


# --- bulk revocation: the same ------------------------------------------------------------------


def test_a_direct_post_to_revoke_keys_in_bulk_revokes_nothing(world, officer_zh):
    keys = list(ApiKey.objects.filter(member__code="ALICE_BANK").values_list("pk", flat=True))
    others = list(ApiKey.objects.filter(member__code="BOB_LOANS").values_list("pk", flat=True))
    selected = {"action": "revoke_selected", "_selected_action": keys}
    user = world.officer.user

    attempts = [
        {**selected, "confirmed": "1"},  # the summary's old hidden field
        {**selected, "confirmation": revoke_token(user, others)},  # another selection
        {**selected, "confirmation": revoke_token(make_officer("li.na").user, keys)},
        {**selected, "confirmation": uphold_token(user, keys[0], "upheld")},
    ]
    for data in attempts:
        response = officer_zh.post(f"{ADMIN}registry/apikey/", data)
        assert response.status_code == 200 and 'id="keys-to-revoke"' in response.content.decode()

    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="api_key.revoked").exists()

    # A token for the selection shown revokes exactly it.
    officer_zh.post(
        f"{ADMIN}registry/apikey/", {**selected, "confirmation": revoke_token(user, keys)}
    )
    assert set(ApiKey.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True)) == set(
        keys
    )

"""The regulator's monthly report (issue 19): its numbers on a world of known events at the
edges of a month in Asia/Shanghai, the CSV parsed back, the PDF turned back into text, the
command's files, the audit event of every generation, and who may download it.

The browser test (an officer downloads last month's report in Chinese):
tests/test_regulator_report_browser.py."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from pypdf import PdfReader

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.models import (
    ApiKey,
    AuditEvent,
    Case,
    CaseStatus,
    Dispute,
    DisputeStatus,
    Lookup,
    Member,
)
from registry.selectors.report import (
    ReportMonth,
    report_cases_by_category,
    report_disputes,
    report_last_checkpoint,
    report_lookups_by_purpose,
    report_members,
    report_subject_access,
)
from registry.services.audit import audit_checkpoint, audit_seal
from registry.services.report import report_generate
from tests.support.admin import verified_client
from tests.support.audit import events, tampering
from tests.support.factories import fresh_phone, token_for
from tests.support.report import case_at, past_event, sh
from tests.support.world import OFFICER_PASSWORD, user_model

pytestmark = pytest.mark.django_db
NOVEMBER = ReportMonth(2026, 11)
REPORT_URL = "/admin/regulator-report/"


START = sh(2026, 11, 1)
END = sh(2026, 12, 1)
TICK = timedelta(microseconds=1)


def make_dispute(world, filed, status, decided=None, responded=None) -> Dispute:
    host = case_at(world.alice.member, "synthetic_identity", sh(2026, 9, 1))
    return Dispute.objects.create(
        case=host,
        filed_by=world.bob.member,
        reason="not_me",
        status=status,
        filed_at=filed,
        due_at=filed + timedelta(days=20),
        decided_at=decided,
        responded_at=responded,
    )


@pytest.fixture
def november(world):
    """Known events around November 2026 in Asia/Shanghai (UTC+8): each edge once inside and
    once outside the month, including times that are still November in UTC but December in
    Shanghai."""
    alice, bob = world.alice.member, world.bob.member
    # Cases (identity_theft unless said)
    case_at(alice, "identity_theft", START)  # submitted, live
    case_at(alice, "identity_theft", START - TICK)  # October: live at the end only
    case_at(  # submitted on the last instant; withdrawn at the next month's first
        alice, "identity_theft", END - TICK, CaseStatus.WITHDRAWN, closed=END
    )
    case_at(alice, "identity_theft", END)  # December: nowhere
    case_at(alice, "identity_theft", sh(2026, 10, 10), CaseStatus.WITHDRAWN, sh(2026, 11, 15))
    case_at(alice, "identity_theft", sh(2026, 10, 10), CaseStatus.EXPIRED, END - TICK)
    case_at(bob, "identity_theft", sh(2026, 11, 5), CaseStatus.REMOVED, sh(2026, 11, 20))
    case_at(bob, "identity_theft", sh(2026, 9, 1), CaseStatus.EXPIRED, START - TICK)
    case_at(bob, "identity_theft", sh(2026, 12, 2), CaseStatus.WITHDRAWN, sh(2026, 12, 3))
    case_at(bob, "identity_theft", sh(2026, 11, 10), CaseStatus.DISPUTED)  # submitted, live
    # 16:30 UTC on 15 November is the 16th in Shanghai; 16:00 UTC on 30 November is December.
    case_at(bob, "forged_documents", datetime(2026, 11, 15, 16, 30, tzinfo=ZoneInfo("UTC")))
    case_at(bob, "forged_documents", datetime(2026, 11, 30, 16, 0, tzinfo=ZoneInfo("UTC")))

    # Disputes (each on its own synthetic_identity case of September, live)
    d = {
        "met": make_dispute(world, sh(2026, 11, 2), DisputeStatus.UPHELD, decided=sh(2026, 11, 10)),
        "at_deadline": make_dispute(  # decided at the very deadline: missed
            world, sh(2026, 10, 20, 10), DisputeStatus.REJECTED, decided=sh(2026, 11, 9, 10)
        ),
        "just_before": make_dispute(  # decided a microsecond before it: met
            world,
            sh(2026, 10, 21, 10),
            DisputeStatus.REJECTED,
            decided=sh(2026, 11, 10, 10) - TICK,
            responded=sh(2026, 10, 25),
        ),
        "open": make_dispute(world, sh(2026, 11, 25), DisputeStatus.OPEN),
        "overdue": make_dispute(
            world, sh(2026, 10, 15), DisputeStatus.OVERDUE, responded=sh(2026, 10, 20)
        ),
        "decided_after": make_dispute(
            world, sh(2026, 11, 28), DisputeStatus.UPHELD, decided=sh(2026, 12, 2)
        ),
        "december": make_dispute(
            world, datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("UTC")), DisputeStatus.OPEN
        ),
        "october": make_dispute(
            world, sh(2026, 10, 1), DisputeStatus.REJECTED, decided=sh(2026, 10, 15)
        ),
    }

    # Subject access, as the compliance selector audits it (fingerprints, what was found)
    officer = Actor.for_officer(world.officer.user)
    officer_key = Actor.for_api_key(ApiKey.objects.get(officer=world.officer.user))
    sa = AuditAction.SUBJECT_ACCESS
    found = {"kind": "phone", "cases": 1, "lookups": 0, "watches": 0}
    nothing = {"kind": "phone", "cases": 0, "lookups": 0, "watches": 0}
    past_event(officer, sa, START, "identifier", "aaaaaaaaaaaaaaaa", found)
    past_event(officer_key, sa, sh(2026, 11, 4), "identifier", "aaaaaaaaaaaaaaaa", nothing)
    past_event(
        officer,
        sa,
        END - TICK,
        "identifier",
        "bbbbbbbbbbbbbbbb",
        {**nothing, "lookups": 2},
    )
    past_event(officer, sa, END, "identifier", "cccccccccccccccc", found)
    past_event(officer, sa, START - TICK, "identifier", "dddddddddddddddd", found)

    # Lookups
    for purpose, at, ids, matches in (
        ("loan_application", START, 3, 1),
        ("loan_application", sh(2026, 11, 15), 5, 0),
        ("fraud_investigation", END - TICK, 1000, 2),
        ("account_opening", START - TICK, 7, 7),
        ("account_opening", END, 9, 9),
    ):
        Lookup.objects.create(
            member=bob, purpose=purpose, identifier_count=ids, match_count=matches, created_at=at
        )

    # Members: the world's three joined in September; DAVE in November; EVE in December;
    # FRANK in September, suspended in October and never reinstated.
    Member.objects.update(created_at=sh(2026, 9, 1))
    for code, joined in (("DAVE_FIN", sh(2026, 11, 15)), ("EVE_PAY", END), ("FRANK_CO", None)):
        member = Member.objects.create(code=code, name=code.title())
        Member.objects.filter(pk=member.pk).update(created_at=joined or sh(2026, 9, 1))
    system = Actor.system()
    for action, code, at in (
        (AuditAction.MEMBER_SUSPENDED, "FRANK_CO", sh(2026, 10, 5)),
        (AuditAction.MEMBER_SUSPENDED, "BOB_LOANS", sh(2026, 11, 10)),
        (AuditAction.MEMBER_ACTIVE, "BOB_LOANS", sh(2026, 11, 20)),
        (AuditAction.MEMBER_SUSPENDED, "CAROL_CREDIT", END - TICK),
        (AuditAction.MEMBER_SUSPENDED, "ALICE_BANK", END),
    ):
        past_event(system, action, at, "member", code, {"rationale_length": 0})

    # Checkpoints: the month's last one a second before its end, the next at its end.
    audit_seal()
    last = audit_checkpoint(now=END - timedelta(seconds=1), force=True)
    audit_seal()
    audit_checkpoint(now=END, force=True)
    audit_seal()
    return {"disputes": d, "checkpoint": last}


def by_code(rows):
    return {row.code: row for row in rows}


def test_it_counts_cases_by_category_in_shanghai_months(november):
    rows = by_code(report_cases_by_category(month=NOVEMBER, now=END + timedelta(days=10)))
    theft = rows["identity_theft"]
    assert (theft.submitted, theft.withdrawn, theft.expired, theft.removed, theft.live_at_end) == (
        4,
        1,
        1,
        1,
        4,
    )
    forged = rows["forged_documents"]
    assert (forged.submitted, forged.live_at_end) == (1, 1)
    # The disputes' eight host cases, live since September.
    assert rows["synthetic_identity"].submitted == 0
    assert rows["synthetic_identity"].live_at_end == 8
    mule = rows["money_mule"]
    assert (mule.submitted, mule.withdrawn, mule.expired, mule.removed, mule.live_at_end) == (
        0,
        0,
        0,
        0,
        0,
    )


def test_it_counts_live_cases_at_a_months_end_whatever_happened_since(november):
    """October: what was live at its end, although much has been submitted and closed since."""
    rows = by_code(report_cases_by_category(month=ReportMonth(2026, 10), now=END))
    # Live at the end of October: submitted before 1 November and not closed by then.
    assert (
        rows["identity_theft"].live_at_end == 3
    )  # the 31 October case and the two closed in November
    assert rows["identity_theft"].expired == 1  # the instant before November is October's
    assert rows["identity_theft"].submitted == 3  # the 31 October case, the two of 10 October
    september = by_code(report_cases_by_category(month=ReportMonth(2026, 9), now=END))
    assert september["identity_theft"].submitted == 1
    assert september["synthetic_identity"].live_at_end == 8


def test_it_counts_disputes_and_the_deadline_met_or_missed_at_the_boundary(november):
    figures = report_disputes(month=NOVEMBER, deadline_days=20)
    assert figures.filed == 3  # met, open, decided_after (not the one filed on 1 Dec, Shanghai)
    assert (figures.upheld, figures.rejected) == (1, 2)
    assert figures.open_at_end == 3  # open, overdue, decided_after
    assert figures.open_past_deadline_at_end == 1  # overdue
    assert figures.deadlines_in_month == 4  # met, at_deadline, just_before, overdue
    assert (figures.deadline_met, figures.deadline_missed) == (2, 2)
    assert figures.deadline_days == 20

    october = report_disputes(month=ReportMonth(2026, 10), deadline_days=20)
    assert (october.filed, october.rejected, october.deadlines_in_month) == (4, 1, 1)
    assert (october.deadline_met, october.deadline_missed) == (1, 0)


def test_it_counts_subject_access_lookups_and_members(november):
    access = report_subject_access(month=NOVEMBER)
    assert (access.requests, access.via_admin, access.via_api) == (3, 2, 1)
    assert (access.with_records, access.identifiers) == (2, 2)

    lookups = by_code(report_lookups_by_purpose(month=NOVEMBER))
    assert list(lookups) == [
        "loan_application",
        "account_opening",
        "credit_review",
        "fraud_investigation",
    ]
    loans = lookups["loan_application"]
    assert (loans.calls, loans.identifiers, loans.matches) == (2, 8, 1)
    fraud = lookups["fraud_investigation"]
    assert (fraud.calls, fraud.identifiers, fraud.matches) == (1, 1000, 2)
    assert lookups["account_opening"].calls == lookups["credit_review"].calls == 0

    members = report_members(month=NOVEMBER)
    assert members.joined == ["DAVE_FIN"]
    assert members.suspended == ["BOB_LOANS", "CAROL_CREDIT"]
    assert members.reinstated == ["BOB_LOANS"]
    assert members.members_at_end == 5  # the world's three, DAVE and FRANK
    assert members.suspended_at_end == 2  # CAROL (on the last instant) and FRANK


def test_it_names_the_months_last_checkpoint(november):
    checkpoint = report_last_checkpoint(month=NOVEMBER)
    expected = november["checkpoint"]
    assert (checkpoint.seq, checkpoint.hash, checkpoint.key_id) == (
        expected.seq,
        expected.hash,
        expected.key_id,
    )
    assert checkpoint.signed_at == END - timedelta(seconds=1)
    assert report_last_checkpoint(month=ReportMonth(2026, 10)) is None


def csv_values(content: bytes) -> dict:
    text = content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["部分", "项目", "指标", "数值", "代码"]
    return {row[4]: row for row in rows[1:]}


def test_it_writes_a_csv_that_parses_back_to_the_numbers_and_audits_it(world, november):
    report = report_generate(
        actor=Actor.for_officer(world.officer.user), month=NOVEMBER, fmt="csv", via="admin"
    )
    assert report.filename == "regulator-report-2026-11.csv"
    values = csv_values(report.content)
    value = {key: row[3] for key, row in values.items()}
    assert value["report.month"] == "2026-11"
    assert value["report.timezone"] == "Asia/Shanghai"
    assert value["report.period_start"] == "2026-11-01 00:00:00 (UTC+08:00)"
    assert value["report.period_end"] == "2026-12-01 00:00:00 (UTC+08:00)"
    assert values["cases.identity_theft.submitted"][:3] == [
        "按类别统计的案件",
        "身份盗用",
        "新提交",
    ]
    assert [value[f"cases.identity_theft.{m}"] for m in ("withdrawn", "expired", "removed")] == [
        "1",
        "1",
        "1",
    ]
    assert value["cases.identity_theft.live_at_end"] == "4"
    assert value["cases.total.submitted"] == "5"
    assert (value["disputes.filed"], value["disputes.upheld"], value["disputes.rejected"]) == (
        "3",
        "1",
        "2",
    )
    assert (value["disputes.deadline_met"], value["disputes.deadline_missed"]) == ("2", "2")
    assert value["subject_access.requests"] == "3"
    assert value["lookups.fraud_investigation.identifiers"] == "1000"
    assert value["lookups.total.calls"] == "3"
    assert value["members.joined.codes"] == "DAVE_FIN"
    assert value["members.suspended"] == "2"
    assert value["audit.chain_ok"] == "是"
    assert value["audit.checkpoint.seq"] == str(november["checkpoint"].seq)
    assert value["audit.checkpoint.hash"] == november["checkpoint"].hash
    assert value["audit.checkpoint.signed_at"] == "2026-11-30 23:59:59 (UTC+08:00)"

    event = events(AuditAction.REPORT_GENERATED).get()
    assert (event.officer, event.object_type, event.object_id) == ("officer", "report", "2026-11")
    assert event.details["format"] == "csv" and event.details["via"] == "admin"
    assert event.details["sha256"] == report.sha256
    assert event.details["chain_ok"] is True
    assert event.details["checkpoint_seq"] == november["checkpoint"].seq


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    assert reader.metadata.title == "监管月度报告 2026-11"
    return "\n".join(page.extract_text() for page in reader.pages)


def test_it_writes_a_chinese_pdf_with_the_numbers(world, november):
    report = report_generate(
        actor=Actor.for_officer(world.officer.user), month=NOVEMBER, fmt="pdf", via="admin"
    )
    assert report.content_type == "application/pdf"
    text = pdf_text(report.content)
    for heading in (
        "监管月度报告：2026 年 11 月",
        "Asia/Shanghai（UTC+08:00）",
        "按类别统计的案件",
        "争议",
        "数据主体查阅请求",
        "按目的统计的查询",
        "成员机构",
        "审计链",
        "本月最后一个检查点",
    ):
        assert heading in text, heading
    lines = text.splitlines()
    assert any(line.startswith("生成者") and "officer" in line for line in lines)
    assert "身份盗用 4 1 1 1 4" in lines
    assert "伪造证件 1 0 0 0 1" in lines
    assert "合计 5 1 1 1 13" in lines  # live: 4 + 1 + the 8 dispute hosts
    assert "已提交 3" in lines and "成立 1" in lines and "驳回 2" in lines
    assert "按期处理 2" in lines and "逾期处理 2" in lines
    assert "欺诈调查 1 1000 2" in lines
    assert "新加入 1: DAVE_FIN" in lines
    assert "审计链完好 是" in lines
    assert f"密封事件数 {november['checkpoint'].seq}" in lines
    assert november["checkpoint"].hash[:20] in text.replace("\n", "")
    assert "2026-11-30 23:59:59 (UTC+08:00)" in text
    assert events(AuditAction.REPORT_GENERATED, details__format="pdf").count() == 1


def test_it_reports_a_broken_chain(world, november):
    victim = AuditEvent.objects.filter(action=AuditAction.SUBJECT_ACCESS).order_by("id").first()
    with tampering(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE registry_auditevent SET details = '{}'::jsonb WHERE id = %s", [victim.pk]
        )
    report = report_generate(actor=Actor.system(), month=NOVEMBER, fmt="csv", via="command")
    value = {key: row[3] for key, row in csv_values(report.content).items()}
    assert value["audit.chain_ok"] == "否"
    assert value["audit.first_bad_event_id"] == str(victim.pk)
    text = pdf_text(
        report_generate(actor=Actor.system(), month=NOVEMBER, fmt="pdf", via="command").content
    )
    assert "审计链完好 否" in text and f"#{victim.pk}" in text


def test_it_writes_files_from_the_command(november, tmp_path, capsys):
    pdf, table = tmp_path / "nov.pdf", tmp_path / "nov.csv"
    call_command("monthly_report", "--month", "2026-11", "--out", str(pdf))
    call_command("monthly_report", "--month", "2026-11", "--format", "csv", "--out", str(table))
    assert "身份盗用 4 1 1 1 4" in pdf_text(pdf.read_bytes()).splitlines()
    assert csv_values(table.read_bytes())["disputes.open_at_end"][3] == "3"
    out = capsys.readouterr().out
    assert str(table) in out and "2026-11 (Asia/Shanghai)" in out
    generated = events(AuditAction.REPORT_GENERATED).order_by("id")
    assert [(e.actor_type, e.details["format"], e.details["via"]) for e in generated] == [
        ("system", "pdf", "command"),
        ("system", "csv", "command"),
    ]
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("monthly_report", "--month", "11/2026")
    with pytest.raises(CommandError, match="not begun"):
        call_command("monthly_report", "--month", "2999-01")


def test_the_command_defaults_to_the_last_full_month(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call_command("monthly_report", "--format", "csv")
    expected = ReportMonth.previous()
    written = tmp_path / f"regulator-report-{expected}.csv"
    assert csv_values(written.read_bytes())["report.month"][3] == str(expected)


def test_an_officer_and_an_auditor_download_it_and_others_are_refused(world, november, auditor):
    officer = verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = officer.get(REPORT_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "监管月度报告" in html and 'id="desk-regulator-report"' in html
    assert f'<option value="{ReportMonth.previous()}" selected>' in html

    response = officer.post(REPORT_URL, {"month": "2026-11", "csv": "下载 CSV"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="regulator-report-2026-11.csv"'
    assert response["Cache-Control"].startswith("no-store")
    assert csv_values(response.content)["cases.identity_theft.live_at_end"][3] == "4"

    response = auditor.post(REPORT_URL, {"month": "2026-11", "pdf": "下载 PDF"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "身份盗用 4 1 1 1 4" in pdf_text(response.content).splitlines()
    assert [(e.officer, e.details["format"]) for e in events(AuditAction.REPORT_GENERATED)] == [
        ("auditor", "pdf"),
        ("officer", "csv"),
    ]

    # A month not offered is refused without a file or an event.
    refused = officer.post(REPORT_URL, {"month": "1999-01", "csv": "x"})
    assert refused.status_code == 200 and refused["Content-Type"].startswith("text/html")
    assert events(AuditAction.REPORT_GENERATED).count() == 2
    # Nor is a malformed, oversized or missing month.
    for form in (
        {"month": "2026-13", "csv": "x"},
        {"month": "11/2026", "pdf": "x"},
        {"month": "2026-11" * 1000, "csv": "x"},
        {"csv": "x"},
    ):
        response = officer.post(REPORT_URL, form)
        assert response.status_code == 200, form
        assert response["Content-Type"].startswith("text/html"), form
    assert events(AuditAction.REPORT_GENERATED).count() == 2

    # A member's key, a stranger without a desk role, and nobody at all: no report.
    assert world.alice.client.post(REPORT_URL, {"month": "2026-11"}).status_code == 302
    assert world.alice.client.get(REPORT_URL).status_code == 302
    stranger = user_model().objects.create_user(
        username="stranger", password=OFFICER_PASSWORD, is_staff=True
    )
    stranger_client = verified_client(stranger)
    assert stranger_client.get(REPORT_URL).status_code == 403
    assert stranger_client.post(REPORT_URL, {"month": "2026-11", "csv": "x"}).status_code == 403
    assert "desk-regulator-report" not in stranger_client.get("/admin/").content.decode()
    assert events(AuditAction.REPORT_GENERATED).count() == 2


def test_it_counts_a_subject_access_request_made_in_the_admin(world, officer):
    """The report counts subject access as the admin's own page audits it."""
    token = token_for("phone", fresh_phone())
    response = officer.post("/admin/subject-access/", {"kind": "phone", "token": token})
    assert response.status_code == 200
    made = events(AuditAction.SUBJECT_ACCESS).get()
    access = report_subject_access(month=ReportMonth.containing(made.created_at))
    assert (access.requests, access.via_admin, access.with_records, access.identifiers) == (
        1,
        1,
        0,
        1,
    )


def test_each_report_query_can_read_an_index(november):
    """With sequential scans priced out, the planner reads each of the big tables' report
    queries from an index, not a scan of every row. Which index it picks on a handful of rows
    is its business (the live-case count may use another partial index on the same status);
    migration 0014 makes one for each."""
    plans = {}
    month = NOVEMBER
    queries = {
        "case_created": Case.objects.filter(created_at__gte=month.start, created_at__lt=month.end)
        .values("category_id")
        .order_by(),
        "case_closed": Case.objects.filter(
            status__in=["withdrawn", "removed", "expired"], status_changed_at__gte=month.start
        )
        .values("category_id", "status")
        .order_by(),
        "case_live_category": Case.objects.filter(status__in=["active", "disputed"])
        .values("category_id")
        .order_by(),
        "lookup_created": Lookup.objects.filter(
            created_at__gte=month.start, created_at__lt=month.end
        )
        .values("purpose", "identifier_count")
        .order_by(),
        "": AuditEvent.objects.filter(
            action=AuditAction.SUBJECT_ACCESS, created_at__gte=month.start
        ).order_by(),
    }
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for index, queryset in queries.items():
            plans[index] = queryset.explain()
    for plan in plans.values():
        assert "Seq Scan" not in plan and "Index" in plan, plan

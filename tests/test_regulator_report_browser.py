"""An officer downloads last month's report to the regulator in a real headless Chromium, in
Chinese at 1400 px: from the sidebar, the month offered by default, the PDF and the CSV as the
browser saves them (Playwright downloads). Screenshot: var/screenshots/desk-regulator-report.png.

The report's numbers in detail: tests/test_regulator_report.py."""

import csv
import io
import shutil
from datetime import timedelta

import pytest
from pypdf import PdfReader

from registry.audit_actions import AuditAction
from registry.selectors.report import ReportMonth
from tests.support.audit import events
from tests.support.browser import CHROMIUM, SCREENSHOTS, sign_in
from tests.support.report import case_at

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package"),
]


@pytest.fixture
def page(chinese_page):
    return chinese_page  # zh-CN, 1400 px (tests/support/browser.py)


def last_months_cases(world, count: int) -> ReportMonth:
    """`count` identity-theft cases submitted in the middle of last month (Shanghai)."""
    month = ReportMonth.previous()
    for _ in range(count):
        case_at(world.alice.member, "identity_theft", month.start + timedelta(days=14))
    return month


def test_an_officer_downloads_last_months_report_in_chinese(world, live_server, page, tmp_path):
    month = last_months_cases(world, 3)
    sign_in(page, live_server.url, world.officer.user)

    page.click("#desk-regulator-report")
    page.wait_for_selector("#regulator-report-form")
    assert "监管月度报告" in page.inner_text("#content")
    assert "Asia/Shanghai" in page.inner_text("#content-main")
    assert page.input_value("#id_month") == str(month)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "desk-regulator-report.png"))

    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    pdf = pdf_download.value
    assert pdf.suggested_filename == f"regulator-report-{month}.pdf"
    pdf.save_as(tmp_path / "report.pdf")
    reader = PdfReader(tmp_path / "report.pdf")
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert f"监管月度报告：{month.year} 年 {month.month} 月" in text
    assert "身份盗用 3 0 0 0 3" in text.splitlines()
    assert "审计链完好 是" in text.splitlines()

    with page.expect_download() as csv_download:
        page.click("#download-csv")
    table = csv_download.value
    assert table.suggested_filename == f"regulator-report-{month}.csv"
    table.save_as(tmp_path / "report.csv")
    rows = list(csv.reader(io.StringIO((tmp_path / "report.csv").read_text("utf-8-sig"))))
    values = {row[4]: row[3] for row in rows[1:]}
    assert values["report.month"] == str(month)
    assert values["cases.identity_theft.submitted"] == "3"

    generated = events(AuditAction.REPORT_GENERATED).order_by("id")
    assert [(e.officer, e.object_id, e.details["format"]) for e in generated] == [
        ("officer", str(month), "pdf"),
        ("officer", str(month), "csv"),
    ]

"""Officers see monitoring in counts (never a token, a fingerprint or a label): per member on
the dashboard, and on the member's page with its webhook endpoints' delivery health; in
Chinese when asked."""

import pytest
from django.utils import timezone

from registry.models import AuditEvent, Member, WebhookEndpoint
from tests.support.admin import ADMIN, verified_client
from tests.support.factories import fresh_phone, identifier, submit_case
from tests.support.monitoring import run_alert_tasks, watch
from tests.support.translations import ensure_compiled_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitored(world):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone, identifier("phone", fresh_phone())], label="LOAN-SECRET-LABEL")
    response = world.bob.post(
        "/api/v1/webhook-endpoints",
        {"url": "https://hooks.bob-loans.example/registry", "events": ["case.reported"]},
    )
    assert response.status_code == 201
    WebhookEndpoint.objects.update(failing_since=timezone.now())
    submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    return phone


def test_the_dashboard_counts_watches_alerts_and_failing_endpoints_per_member(world, monitored):
    response = verified_client(world.officer.user).get(ADMIN)
    board = response.context["dashboard"]
    (row,) = [item["row"] for item in board["monitoring"]]
    assert (row.code, row.watches, row.alerts_30d, row.endpoints, row.failing_endpoints) == (
        "BOB_LOANS",
        2,
        1,
        1,
        1,
    )
    assert row.pending_deliveries == 1
    assert board["failing_endpoints"] == 1
    html = response.content.decode()
    assert 'id="tile-webhooks-failing"' in html and 'id="monitoring"' in html
    assert "LOAN-SECRET-LABEL" not in html and monitored["token"] not in html


def test_the_member_page_shows_its_endpoints_health_and_lets_officers_set_the_threshold(
    world, monitored
):
    officer = verified_client(world.officer.user)
    bob = world.bob.member
    page = officer.get(f"{ADMIN}registry/member/{bob.pk}/change/")
    assert page.status_code == 200
    monitoring = page.context["member_monitoring"]
    assert monitoring["watches"] == 2 and monitoring["alerts"] == {"case.reported": 1}
    html = page.content.decode()
    assert "hooks.bob-loans.example" in html and "LOAN-SECRET-LABEL" not in html
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) or "" for name in form.fields}
    data["velocity_alert_threshold"] = "5"
    saved = officer.post(f"{ADMIN}registry/member/{bob.pk}/change/", data)
    assert saved.status_code == 302, saved.content[:2000]
    assert Member.objects.get(pk=bob.pk).velocity_alert_threshold == 5
    event = AuditEvent.objects.filter(action="member.updated", object_id=bob.code).last()
    assert event.details == {"velocity_alert_threshold": 5}


def test_the_monitoring_panel_speaks_chinese(world, monitored):
    ensure_compiled_messages()
    client = verified_client(world.officer.user, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    html = client.get(ADMIN).content.decode()
    assert "监测：监控、预警与 webhook" in html and "失败的 webhook 端点" in html


def test_subject_access_in_the_admin_lists_live_watches_and_their_csv_rows(world):
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone], label="LOAN-SECRET-LABEL")
    officer = verified_client(world.officer.user)
    page = officer.post(f"{ADMIN}subject-access/", {"kind": "phone", "token": phone["token"]})
    html = page.content.decode()
    assert 'id="subject-watches"' in html and "BOB_LOANS" in html
    assert "LOAN-SECRET-LABEL" not in html
    download = officer.post(
        f"{ADMIN}subject-access/", {"kind": "phone", "token": phone["token"], "download": "1"}
    )
    rows = download.content.decode("utf-8-sig").splitlines()
    # Record types are words in the officer's language (English here: no Accept-Language).
    assert any(row.startswith("Watch,") and "BOB_LOANS" in row for row in rows)

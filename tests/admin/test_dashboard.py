"""The dashboard: lookups, cases, disputes, members and jobs at a glance."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import Dispute, JobRun
from tests.support.admin import ADMIN
from tests.support.factories import disputed_case, fresh_phone, identifier, listed_case, lookup

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_lookups_cases_disputes_members_and_jobs(world, officer):
    _case, ident = listed_case(world, category="money_mule")
    lookup(world.bob, [ident])  # a hit
    lookup(world.bob, [identifier("phone", fresh_phone())])  # a miss
    lookup(world.carol, [identifier("phone", fresh_phone())])
    _, _, overdue = disputed_case(world)
    Dispute.objects.filter(pk=overdue["id"]).update(due_at=timezone.now() - timedelta(hours=1))
    JobRun.objects.create(
        job="expiry",
        status="failed",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        details={"error": "OperationalError"},
    )

    response = officer.get(ADMIN)

    assert response.status_code == 200
    board = response.context["dashboard"]
    assert board["daily"]["total_lookups"] == 3 and board["daily"]["total_hits"] == 1
    assert board["disputes"].undecided == 1 and board["disputes"].overdue == 1
    assert [(b.label, b.value) for b in board["members"]] == [("BOB_LOANS", 2), ("CAROL_CREDIT", 1)]
    categories = {b.title: b.value for b in board["categories"]}
    assert categories["money_mule"] == 1 and categories["identity_theft"] == 1
    jobs = {j["job"]: j for j in board["jobs"]}
    assert jobs["expiry"]["state"] == "failed" and jobs["audit_seal"]["state"] == "never"
    html = response.content.decode()
    assert html.count('class="registry-bar-lookups"') == 30
    assert "registry-tile-alarm" in html and "OperationalError" in html
    today = timezone.localdate()
    assert re.search(r"<title>[^<]*: 3 lookups</title>", html)
    assert f"{today:%m-%d}" in html

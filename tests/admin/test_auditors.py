"""Read-only auditors: every page to read and export, nothing to change."""

import pytest

from registry.models import ApiKey, Category, Dispute, Member
from tests.support.admin import ADMIN, RATIONALE, decide_url
from tests.support.factories import disputed_case

pytestmark = pytest.mark.django_db


def test_an_auditor_can_view_and_export_but_not_change_anything(world, auditor):
    case, _ident, dispute = disputed_case(world)
    member = world.alice.member
    key = ApiKey.objects.get(member=member)
    for url in (
        "",
        "registry/member/",
        f"registry/member/{member.pk}/change/",
        "registry/case/",
        f"registry/case/{case['id']}/change/",
        "registry/dispute/",
        f"registry/dispute/{dispute['id']}/change/",
        "registry/auditevent/",
        "registry/apikey/",
        "registry/jobrun/",
        "registry/category/",
        "registry/auditevent/verify/",
        "subject-access/",
    ):
        assert auditor.get(ADMIN + url).status_code == 200, url
    export = auditor.get(f"{ADMIN}registry/auditevent/export/")
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert (
        'id="decision-form"'
        not in auditor.get(f"{ADMIN}registry/dispute/{dispute['id']}/change/").content.decode()
    )

    refused = [
        auditor.post(decide_url(dispute["id"]), {"outcome": "upheld", "rationale": RATIONALE}),
        auditor.post(f"{ADMIN}registry/member/{member.pk}/suspend/", {"rationale": "x"}),
        auditor.post(
            f"{ADMIN}registry/member/{member.pk}/limit/",
            {"scope": "lookup", "per_minute": 1, "per_day": 1},
        ),
        auditor.post(
            f"{ADMIN}registry/member/{member.pk}/change/", {"name": "Renamed", "contact_email": ""}
        ),
        auditor.post(f"{ADMIN}registry/member/add/", {"code": "NEW_ONE", "name": "New"}),
        auditor.post(f"{ADMIN}registry/apikey/add/", {"member": member.pk, "scopes": ["lookup"]}),
        auditor.post(f"{ADMIN}registry/apikey/{key.pk}/revoke/", {}),
        auditor.post(f"{ADMIN}registry/case/{case['id']}/withdraw/", {"reason": "x"}),
        auditor.post(f"{ADMIN}registry/category/money_mule/change/", {"retention_days": 5}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert Dispute.objects.get(pk=dispute["id"]).status == "open"
    member.refresh_from_db()
    assert (member.status, member.name) == ("active", "Alice Bank")
    assert not Member.objects.filter(code="NEW_ONE").exists()
    assert ApiKey.objects.filter(member=member, revoked_at__isnull=True).count() == 1
    assert Category.objects.get(pk="money_mule").retention_days == 1826

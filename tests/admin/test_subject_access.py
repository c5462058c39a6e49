"""The subject-access page: a data subject's report by token, shown and downloaded."""

import csv
import io

import pytest

from tests.support.admin import ADMIN
from tests.support.audit import events
from tests.support.factories import listed_case, lookup

pytestmark = pytest.mark.django_db


def test_subject_access_shows_the_report_and_downloads_it_as_csv(world, officer):
    case, ident = listed_case(world)
    lookup(world.bob, [ident])
    url = f"{ADMIN}subject-access/"
    assert officer.get(url).status_code == 200

    page = officer.post(url, {"kind": "phone", "token": ident["token"], "show": "1"})

    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    report = page.context["report"]
    assert [str(c["case_id"]) for c in report["cases"]] == [case["id"]]
    assert [lk["member"] for lk in report["lookups"]] == ["BOB_LOANS"]
    html = page.content.decode()
    assert report["fingerprint"] in html and "BOB_LOANS" in html

    download = officer.post(url, {"kind": "phone", "token": ident["token"], "download": "1"})

    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert report["fingerprint"] in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == ["Case", "Lookup"]
    assert rows[1][1] == case["id"] and ident["token"] not in download.content.decode()
    assert events("compliance.subject_access", object_id=report["fingerprint"]).count() == 2


def test_subject_access_refuses_a_malformed_token_without_a_report(world, officer):
    response = officer.post(f"{ADMIN}subject-access/", {"kind": "phone", "token": "13912345678"})
    assert response.status_code == 200
    assert response.context["form"].errors["token"] and response.context["report"] is None
    assert not events("compliance.subject_access").exists()

"""End to end: the member-side CLI against the real server (gunicorn) on loopback.

Alice reports cases from a CSV through `registry-client submit`; Bob looks up a CSV of
10,000 applicants through `registry-client lookup`; matches appear exactly on the rows whose
phone or resident ID Alice reported, and a second submit run creates nothing new."""

import csv
import os
import random
import subprocess
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from registry_client.canonical import resident_id_check_digit

from registry.models import Case, CaseIdentifier, Dispute
from tests.support.cli import CLI, run_cli
from tests.support.factories import identifier, lookup, submit_case
from tests.support.servers import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
ROWS = 10_000
REPORTED = 150


def phone(n: int) -> str:
    return f"139{n:08d}"


def resident_id(n: int) -> str:
    """A distinct valid resident ID for each n < 10**7: birth date and sequence from n."""
    born = date(1950, 1, 1) + timedelta(days=n // 1000)
    first17 = f"110105{born:%Y%m%d}{n % 1000:03d}"
    return first17 + resident_id_check_digit(first17)


def write_cases(path: Path, numbers: list[int]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["reference", "category", "confirmed_at", "phone", "cn_resident_id"])
        for n in numbers:
            writer.writerow([f"CASE-{n}", "identity_theft", "2026-10-01", phone(n), resident_id(n)])


def write_applicants(path: Path, reported: set[int]) -> dict[int, bool]:
    """Rows 1..ROWS; returns row number -> should match. Every 1000th row is invalid."""
    expected = {}
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name_ref", "mobile", "id_no"])
        for row in range(1, ROWS + 1):
            n = row * 7  # applicant numbers; some were reported
            if row % 1000 == 0:
                writer.writerow([f"A{row}", "12345", resident_id(n)])  # invalid phone
            elif row % 2:
                writer.writerow([f"A{row}", phone(n), resident_id(10**6 + n)])
            else:
                writer.writerow([f"A{row}", phone(10**6 + n), resident_id(n)])
            expected[row] = n in reported
    return expected


def test_it_finds_exactly_the_reported_rows_through_the_cli(world, tmp_path):
    random.seed(7)
    reported = sorted(random.sample([row * 7 for row in range(1, ROWS + 1)], REPORTED))
    cases_csv, applicants_csv = tmp_path / "cases.csv", tmp_path / "applicants.csv"
    write_cases(cases_csv, reported)
    expected = write_applicants(applicants_csv, set(reported))

    with gunicorn(workers=2) as base:
        first = run_cli(base, world.alice.raw_key, "submit", str(cases_csv), "--attest")
        assert first.returncode == 0, first.stderr
        assert Case.objects.filter(member=world.alice.member).count() == REPORTED
        assert CaseIdentifier.objects.count() == 2 * REPORTED

        again = run_cli(base, world.alice.raw_key, "submit", str(cases_csv), "--attest")
        assert again.returncode == 0, again.stderr
        assert Case.objects.count() == REPORTED  # the re-run created nothing

        lookup = run_cli(
            base,
            world.bob.raw_key,
            "lookup",
            str(applicants_csv),
            "--purpose",
            "loan_application",
            "--column",
            "phone=mobile",
            "--column",
            "cn_resident_id=id_no",
        )
    assert lookup.returncode == 1, lookup.stderr  # some rows were invalid
    results = list(csv.DictReader((tmp_path / "applicants.results.csv").open()))
    matched = {int(r["row"]) for r in results if r["matched"] == "true"}
    invalid = {int(r["row"]) for r in results if r["status"] != "ok"}
    should_match = {row for row, hit in expected.items() if hit}  # incl. valid ID on a bad row
    assert matched == should_match and len(matched) > 0
    assert invalid == {row for row in expected if row % 1000 == 0}
    # Raw values never leave the process into the output or the terminal
    output = (tmp_path / "applicants.results.csv").read_text() + lookup.stderr + lookup.stdout
    assert phone(reported[0]) not in output and resident_id(reported[0]) not in output


def run_cli_with_stdin(base: str, key: str, stdin: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_URL": base, "REGISTRY_API_KEY": key}
    return subprocess.run(
        [CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=600
    )


def test_it_files_a_dispute_only_with_an_identifier_of_the_case_through_the_cli(world):
    """Bob saw the case id in a lookup answer; the CLI sends the subject's identifier (read
    from stdin, tokenised on Bob's side) with the dispute, and a wrong one files nothing."""
    subject, stranger = "+8613911112222", "+8613933334444"
    case = submit_case(world.alice, identifiers=[identifier("phone", subject)])
    (seen,) = lookup(world.bob, [identifier("phone", subject)])["results"][0]["cases"]
    args = ["dispute", seen["case_id"], "--kind", "phone", "--reason", "not_me"]

    with gunicorn(workers=1) as base:
        refused = run_cli_with_stdin(base, world.bob.raw_key, stranger + "\n", *args)
        assert refused.returncode == 1, refused.stderr
        assert "identifier_not_on_case" in refused.stderr
        assert not Dispute.objects.exists()

        filed = run_cli_with_stdin(base, world.bob.raw_key, subject + "\n", *args)
    assert filed.returncode == 0, filed.stderr
    assert Dispute.objects.get().case_id == uuid.UUID(case["id"])
    assert Case.objects.get(pk=case["id"]).status == "disputed"
    for raw in (subject, stranger, subject[3:], stranger[3:]):
        assert raw not in filed.stdout + filed.stderr + refused.stdout + refused.stderr

"""End to end: `registry-client watch` and `registry-client alerts` against the real server
(gunicorn) on loopback. Bob watches a loan book from a CSV; Alice reports a case on one of its
phones; `alerts` prints one line with Bob's own label, and a second run prints nothing (it
resumed from the cursor it saved)."""

import csv
from pathlib import Path

import pytest

from registry.models import OutboxTask, Watch
from registry.services.alerts import alerts_for_cases
from tests.support.cli import run_cli
from tests.support.factories import identifier, submit_case
from tests.support.servers import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def write_book(path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["loan_no", "mobile", "consent"])
        writer.writerow(["LOAN-1001", "13900001001", "C-1001"])
        writer.writerow(["LOAN-1002", "13900001002", "C-1002"])
        writer.writerow(["LOAN-1003", "12345", "C-1003"])  # not a mobile number


def test_it_watches_a_loan_book_and_prints_alerts_once_with_the_members_label(world, tmp_path):
    book, state = tmp_path / "book.csv", tmp_path / "cursor"
    write_book(book)
    with gunicorn(workers=1) as base:
        watched = run_cli(
            base,
            world.bob.raw_key,
            "watch",
            str(book),
            "--purpose",
            "loan_monitoring",
            "--column",
            "phone=mobile",
            "--label-column",
            "loan_no",
            "--consent-column",
            "consent",
        )
        assert watched.returncode == 1, watched.stderr  # one invalid row
        assert "rows: 3, invalid rows: 1" in watched.stdout
        assert "watched identifiers: 2" in watched.stdout
        assert "row 3:" in watched.stderr and "12345" not in watched.stderr
        assert sorted(Watch.objects.values_list("label", flat=True)) == ["LOAN-1001", "LOAN-1002"]

        case = submit_case(world.alice, identifiers=[identifier("phone", "+8613900001002")])
        # The worker's part (none runs here): the fan-out the submission queued.
        (task,) = OutboxTask.objects.filter(task="registry.alerts.for_cases")
        assert alerts_for_cases(**task.kwargs) == 1

        first = run_cli(base, world.bob.raw_key, "alerts", "--state-file", str(state))
        assert first.returncode == 0, first.stderr
        (line,) = first.stdout.splitlines()
        assert "case.reported" in line and "label=LOAN-1002" in line
        assert f"case={case['id']}" in line and "13900001002" not in line
        again = run_cli(base, world.bob.raw_key, "alerts", "--state-file", str(state))
        assert again.returncode == 0 and again.stdout == ""

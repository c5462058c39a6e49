"""The bulk commands' progress bar: on a terminal with rate and ETA, never when the output is
not a terminal, never with --quiet, and never with a value from the file."""

from __future__ import annotations

import csv
import io

import pytest

from registry_client.cli import main
from registry_client.progress import Progress

PHONE = "13812345678"
LOOKUP = ["--purpose", "loan_application", "--column", "phone=mobile"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def env(registry, api_key, monkeypatch):
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.setenv("REGISTRY_API_KEY", api_key)
    return registry


def _applicants(path, rows: int):
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["mobile"])
        writer.writerows([f"139{n:08d}"] for n in range(rows - 1))
        writer.writerow([PHONE])
    return path


def test_it_shows_rate_and_time_left():
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, total=1000, clock=lambda: now[0])
    now[0] = 2.0
    progress.update(250, "3 matched")
    line = stream.getvalue()
    assert "250/1,000 rows" in line and "125 rows/s" in line and "ETA 0:06" in line
    assert " 25%" in line and "3 matched" in line


def test_it_draws_a_bar_for_a_lookup_on_a_terminal(env, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    path = _applicants(tmp_path / "in.csv", 30)
    assert main(["lookup", str(path), *LOOKUP]) == 0
    shown = terminal.getvalue()
    assert "\r[" in shown and "30/30 rows" in shown and "rows/s" in shown
    assert PHONE not in shown


def test_it_draws_no_bar_when_output_is_not_a_terminal(env, tmp_path, capsys):
    path = _applicants(tmp_path / "in.csv", 30)
    assert main(["lookup", str(path), *LOOKUP]) == 0
    assert "\r" not in capsys.readouterr().err


def test_it_draws_no_bar_with_quiet(env, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    path = _applicants(tmp_path / "in.csv", 30)
    assert main(["--quiet", "lookup", str(path), *LOOKUP]) == 0
    assert "\r" not in terminal.getvalue()

"""Which run a larger benchmark profile is compared with (bench/run.py's scale_reference)."""

import pytest

from bench.env import VAR_BENCH
from bench.run import parse_args, scale_reference


@pytest.mark.parametrize("database", ["registry_bench", "registry_bench_10m_100m"])
def test_it_compares_the_large_profile_with_the_10m_run(monkeypatch, database):
    # At the end of a run DATABASE_URL names the profile's own database: the 10m run of
    # 2026-12-01 looked for its reference in its own folder and compared with nothing.
    monkeypatch.setenv("DATABASE_URL", f"postgres://bench@127.0.0.1:5432/{database}")

    path, axis = scale_reference(parse_args(["--profile", "large"]))

    assert path == VAR_BENCH / "registry_bench_10m_10m" / "latest.json"
    assert axis == "log_rows"


@pytest.mark.parametrize("database", ["registry_bench", "registry_bench_10m_10m"])
def test_it_compares_the_10m_profile_with_the_default_run(monkeypatch, database):
    monkeypatch.setenv("DATABASE_URL", f"postgres://bench@127.0.0.1:5432/{database}")

    path, axis = scale_reference(parse_args(["--profile", "10m"]))

    assert path == VAR_BENCH / "registry_bench" / "latest.json"
    assert axis == "identifiers"


def test_it_compares_the_default_profile_with_nothing(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://bench@127.0.0.1:5432/registry_bench")

    assert scale_reference(parse_args([])) == (None, None)

"""Which run a larger benchmark profile is compared with (bench/run.py's scale_reference)."""

import pytest

from bench.env import VAR_BENCH
from bench.run import parse_args, scale_reference


@pytest.mark.parametrize(
    "profile, database, reference, axis",
    [
        ("large", "registry_bench", "registry_bench_10m_10m", "log_rows"),
        ("large", "registry_bench_10m_100m", "registry_bench_10m_10m", "log_rows"),
        ("10m", "registry_bench", "registry_bench", "identifiers"),
        ("10m", "registry_bench_10m_10m", "registry_bench", "identifiers"),
    ],
)
def test_it_compares_a_profile_with_the_next_smaller_run(
    monkeypatch, profile, database, reference, axis
):
    # By the end of a run DATABASE_URL names the profile's own database: the 10m run of
    # 2026-12-01 looked for its reference in its own folder and compared with nothing.
    monkeypatch.setenv("DATABASE_URL", f"postgres://bench@127.0.0.1:5432/{database}")

    assert scale_reference(parse_args(["--profile", profile])) == (
        VAR_BENCH / reference / "latest.json",
        axis,
    )


def test_it_compares_the_default_profile_with_nothing(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://bench@127.0.0.1:5432/registry_bench")

    assert scale_reference(parse_args([])) == (None, None)

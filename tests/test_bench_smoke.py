"""The benchmark cannot rot: its smoke run (tiny sizes, one round) must still seed, serve,
measure every figure and write them. Timings are never asserted, only that each is there.

Runs `python -m bench.run --smoke` as a subprocess on a database of its own next to the test
database (`<test database>_bench_smoke`, seeded afresh each run), against a real gunicorn.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {
    "batch": ("api_identifiers_per_s", "sql_identifiers_per_s", "api_over_sql"),
    "single": (
        "requests_per_s",
        "p50_ms",
        "p99_ms",
        "sql_requests_per_s",
        "sql_p99_ms",
        "api_over_sql",
        "p99_api_over_sql",
    ),
    "evaluate": ("api_elements_per_s", "in_process_elements_per_s", "api_over_in_process"),
    "ingest": ("identifiers_per_s", "sql_identifiers_per_s", "api_over_sql"),
    "expiry": ("seconds", "p99_ms_during", "p99_over_without"),
    "retention": ("seconds", "p99_ms_during", "p99_over_without"),
}


def smoke_database_url() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    import services  # scripts/services.py

    db = settings.DATABASES["default"]
    name = (db.get("TEST") or {}).get("NAME") or f"test_{db['NAME']}"
    base = urlsplit(os.environ.get("DATABASE_URL") or services.postgres_url(db["NAME"]))
    url = urlunsplit(base._replace(path=f"/{name}_bench_smoke"))
    services.ensure_database(url)
    return url


@pytest.mark.e2e
def test_it_runs_the_smoke_benchmark_and_writes_every_figure(tmp_path):
    env = {**os.environ, "DATABASE_URL": smoke_database_url(), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        # --reseed: the tiny database is seeded afresh each time, so a copy left by another
        # checkout (other generated secrets) never stands in the way.
        [sys.executable, "-m", "bench.run", "--smoke", "--reseed", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    result = json.loads((tmp_path / "latest.json").read_text())
    for figure, names in FIGURES.items():
        for name in names:
            value = result["figures"][figure][name]
            assert set(value) >= {"median", "min", "max"}, (figure, name)
            assert value["min"] <= value["median"] <= value["max"], (figure, name)
            assert value["median"] > 0, (figure, name)
    # Dropping a month is measured once the lookup log is partitioned, else said to be n/a.
    drop = result["figures"]["drop"]
    assert drop.get("na") == "lookup log not partitioned" or drop["seconds"]["median"] > 0
    assert result["seeded"]["identifiers"] > 0 and result["seeded"]["log_rows"] > 0
    assert result["machine"]["cpus"] and result["machine"]["ram_gib"]
    assert result["machine"]["postgresql"]
    table = (tmp_path / "latest.md").read_text()
    assert "Batch lookups API / bare SQL" in table and "Target" in table
    for line in ("p99 during expiry / without", "p99 during a retention run / without"):
        assert line in run.stdout

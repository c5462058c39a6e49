"""The results tables of bench/README.md from benchmark runs (their latest.json): the ratio
targets of each run, and how each figure scales from one run to the next.

    python -m bench.report var/bench/registry_bench/latest.json \
        var/bench/registry_bench_10m_10m/latest.json \
        var/bench/registry_bench_10m_100m/latest.json      # any of them, smallest first

Scale limits: from 1M to 10M identifiers every figure within 1.3x, from 10M to 100M lookup-log
rows within 1.2x (SCALE_LIMITS in bench/run.py).
"""

import argparse
import itertools
import json
from pathlib import Path

from bench.run import SCALE_LIMITS, machine_line, rows, scale_rows


def count(n: int) -> str:
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def run_name(result: dict) -> str:
    seeded = result["seeded"]
    return f"{count(seeded['identifiers'])} ids / {count(seeded['log_rows'])} log"


def cell(value: dict, fmt: str) -> str:
    return f"{value['median']:{fmt}} ({value['min']:{fmt}}–{value['max']:{fmt}})"


def ratio_table(results: list[dict]) -> str:
    """Every target row: one column per run, median (min–max), target, pass per run."""
    names = [run_name(r) for r in results]
    lines = [
        "| Ratio (same run) | " + " | ".join(names) + " | Target | Pass |",
        "|---|" + "---:|" * len(results) + "---|---|",
    ]
    per_run = [{row.label: row for row in rows(r["figures"]) if row.target} for r in results]
    for label, first in per_run[0].items():
        cells = [cell(run[label].value, first.fmt) if label in run else "" for run in per_run]
        marks = ["pass" if run[label].met else "**fail**" for run in per_run if label in run]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {first.target_text} | "
                     + ", ".join(marks) + " |")  # fmt: skip
    return "\n".join(lines)


def scale_table(small: dict, large: dict, axis: str) -> str:
    limit = SCALE_LIMITS[axis]
    lines = [
        f"| Figure | {run_name(small)} | {run_name(large)} | Times worse | Limit | Pass |",
        "|---|---:|---:|---:|---|---|",
    ]
    for x in scale_rows(large["figures"], small, limit):
        lines.append(f"| {x['label']} | {x['reference']} | {x['this']} | "
                     f"{x['times_worse']:.2f}× | ≤ {limit:.1f}× | "
                     f"{'pass' if x['pass'] else '**fail**'} |")  # fmt: skip
    return "\n".join(lines)


def report(results: list[dict]) -> str:
    parts = [ratio_table(results)]
    for small, large in itertools.pairwise(results):
        more_ids = large["seeded"]["identifiers"] > small["seeded"]["identifiers"] * 2
        axis = "identifiers" if more_ids else "log_rows"
        parts.append(scale_table(small, large, axis))
    parts.append("\n".join(f"- {run_name(r)}: {machine_line(r)}" for r in results))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path, nargs="+", help="latest.json, smallest first")
    args = parser.parse_args()
    print(report([json.loads(path.read_text()) for path in args.results]))


if __name__ == "__main__":
    main()

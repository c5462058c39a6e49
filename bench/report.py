"""The results table of bench/README.md from one or two benchmark results: the 1M run, and
optionally the 10M run with its ratio to the 1M figures (the target: within 1.5x).

    python -m bench.report var/bench/registry_bench/latest.json \
        [var/bench/registry_bench_10m_10m/latest.json]
"""

import argparse
import json
from pathlib import Path

from bench.run import rows

SCALE_LIMIT = 1.5
# Figures where larger is better (rates, ratios of rates); the others are latencies/durations.
HIGHER_IS_BETTER = ("/s", "API / SQL", "API / in-process")


def cell(value: dict, fmt: str) -> str:
    return f"{value['median']:{fmt}} ({value['min']:{fmt}}–{value['max']:{fmt}})"


def worse_by(label: str, small: dict, large: dict) -> float:
    """How many times worse the large run is (1.0 = the same, below 1 = better)."""
    a, b = small["median"], large["median"]
    if not a or not b:
        return 1.0
    return a / b if any(mark in label for mark in HIGHER_IS_BETTER) else b / a


def describe(result: dict) -> str:
    seeded, machine = result["seeded"], result["machine"]
    return (
        f"{seeded['identifiers']:,} identifiers in {seeded['cases']:,} cases, "
        f"{seeded['log_rows']:,} lookup-log rows, {seeded['sightings']:,} sightings; "
        f"{machine['cpus']} CPUs, PostgreSQL {machine['postgresql'].split()[0]}, "
        f"Python {machine['python']}; run {result['started_at']}"
    )


def table(small: dict, large: dict | None) -> str:
    head = "| Figure | 1M: median (min–max) |"
    rule = "|---|---:|"
    if large:
        head += " 10M: median (min–max) | 10M vs 1M |"
        rule += "---:|---:|"
    lines = [head + " Target | Met |", rule + "---|---|"]
    large_rows = rows(large["figures"]) if large else [None] * len(rows(small["figures"]))
    for (label, value, target, met, fmt), other in zip(
        rows(small["figures"]), large_rows, strict=True
    ):
        line = f"| {label} | {cell(value, fmt)} |"
        if large:
            factor = worse_by(label, value, other[1])
            flag = "" if factor <= SCALE_LIMIT else " **over 1.5×**"
            line += f" {cell(other[1], fmt)} | {factor:.2f}×{flag} |"
        mark = "" if met is None else ("yes" if met else "**no**")
        if large and other[3] is not None and other[3] != met:
            mark += f" (10M: {'yes' if other[3] else 'no'})"
        lines.append(f"{line} {target} | {mark} |")
    notes = [f"- 1M run: {describe(small)}"]
    if large:
        notes.append(f"- 10M run: {describe(large)}")
        notes.append("- 10M vs 1M: how many times worse the 10M figure is (target ≤ 1.5×).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("small", type=Path)
    parser.add_argument("large", type=Path, nargs="?")
    args = parser.parse_args()
    small = json.loads(args.small.read_text())
    large = json.loads(args.large.read_text()) if args.large else None
    print(table(small, large))


if __name__ == "__main__":
    main()

"""Ring queries at benchmark scale (issue 19): on a seeded benchmark database (bench/seed.py
seeds rings and builds the ring table with the full rebuild, timed), time and EXPLAIN the
queries the officers' desk and the ring jobs run:

- the neighbour step of an incremental update (services/rings.py), for the largest ring's
  cases, and a whole incremental update of that ring (nothing changes: the worst ordinary
  case, every case of the ring walked again);
- the ring page's links (selectors/rings.py) and the ring list's first page, by size and by
  growth;
- the full rebuild (the daily job) once more.

    python -m bench.rings --identifiers 1000000 [--log-rows 20000] [--reseed]

Prints one JSON object; plans go to var/bench/<database>/ring-plans.txt. No timing is
asserted anywhere; the numbers are for people.
"""

import argparse
import json
import os
import time


def _explain(cursor, sql: str, params) -> str:
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
    return "\n".join(row[0] for row in cursor.fetchall())


def measure() -> tuple[dict, str]:
    from django.db import connection

    from registry.models import Ring, RingCase
    from registry.selectors.rings import _LINKS_SQL, ring_graph
    from registry.services.rings import (
        _NEIGHBOURS_SQL,
        case_neighbours,
        ring_update_for_cases,
        rings_rebuild,
    )

    figures: dict = {
        "rings": Ring.objects.count(),
        "ring_cases": RingCase.objects.count(),
        "largest": list(Ring.objects.order_by("-size").values_list("size", flat=True)[:5]),
    }
    plans = []
    largest = Ring.objects.order_by("-size", "-id").first()
    if largest is None:
        return figures, ""
    cases = [str(pk) for pk in largest.memberships.values_list("case_id", flat=True)]

    began = time.perf_counter()
    case_neighbours(cases)
    figures["neighbours_of_largest_ms"] = round((time.perf_counter() - began) * 1000, 1)
    began = time.perf_counter()
    figures["update_of_largest"] = ring_update_for_cases(case_ids=cases[:1])
    figures["update_of_largest_ms"] = round((time.perf_counter() - began) * 1000, 1)
    began = time.perf_counter()
    graph = ring_graph(ring=largest)
    figures["ring_page_ms"] = round((time.perf_counter() - began) * 1000, 1)
    figures["ring_page_links"] = len(graph.links)
    for ordering in (("-size", "-id"), ("-grown_7d", "-id")):
        began = time.perf_counter()
        list(Ring.objects.order_by(*ordering)[:50])
        figures[f"list_by_{ordering[0].lstrip('-')}_ms"] = round(
            (time.perf_counter() - began) * 1000, 1
        )
    with connection.cursor() as cursor:
        plans.append("-- neighbours of the largest ring's cases\n")
        plans.append(_explain(cursor, _NEIGHBOURS_SQL, [cases]))
        plans.append("\n\n-- the largest ring's links\n")
        plans.append(_explain(cursor, _LINKS_SQL, [largest.pk, 8000]))
        plans.append("\n\n-- the ring list's first page by growth\n")
        plans.append(
            _explain(
                cursor, "SELECT * FROM registry_ring ORDER BY grown_7d DESC, id DESC LIMIT 50", []
            )
        )
    began = time.perf_counter()
    figures["rebuild"] = rings_rebuild()
    figures["rebuild_s"] = round(time.perf_counter() - began, 1)
    return figures, "".join(plans)


def main(argv=None) -> dict:
    from bench import env as bench_env
    from bench.run import database_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    parser.add_argument("--log-rows", type=int, default=20_000)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args(argv)
    args.smoke = False
    url = database_url(args)
    env = bench_env.bench_environment(url)
    bench_env.django_setup(env)
    from django.core.management import call_command

    from bench.seed import SeedPlan, ensure_seeded, side_dir

    call_command("migrate", verbosity=0, interactive=False)
    plan = SeedPlan(identifiers=args.identifiers, log_rows=args.log_rows)
    marker = ensure_seeded(plan, force=args.reseed)
    figures, plans = measure()
    figures["seeded_rings"] = marker.get("loaded", {}).get("rings")
    out = side_dir(bench_env.database_name(url))
    out.mkdir(parents=True, exist_ok=True)
    (out / "ring-plans.txt").write_text(plans)
    print(json.dumps(figures, indent=2, default=str))
    return figures


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")
    main()

"""How fast the audit sealer seals: events/s, on the machine it runs on.

    DATABASE_URL=postgres://.../registry_bench_audit python -m bench.audit_seal
    python -m bench.audit_seal --events 200000 --steady-seconds 60 --rate 2000

Two figures, printed as JSON (and a line each for people):

1. **backlog**: `--events` audit events like the lookup's (audit_record_many, committed), then
   `audit_seal_run` (the job: chunks of SEAL_CHUNK, one transaction each) until all are sealed:
   sealed events per second of the job. Run it twice on the same database and the second run
   seals with the first run's events already sealed inside LATE_COMMIT_WINDOW (the window the
   sealer looks back over for late commits), as in production.
2. **steady** (`--steady-seconds`, 0 to skip): a writer process inserts `--rate` events/s in
   batches of 100 while this process runs the job every 10 s, as beat does; reports the events
   written and sealed per second and the seal lag (the oldest unsealed event's age) after each
   run. Keeping up means the lag stays around one job interval.

The audit trail is append-only, so every run adds to it for good: the database's name must
contain "bench" (bench/env.py refuses any other). No timing is asserted anywhere.
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import env as bench_env  # noqa: E402

JOB_INTERVAL = 10.0  # seconds between audit_seal runs in beat's default schedule
WRITER_BATCH = 100


def lookup_like_events(count: int):
    """Events shaped like the lookup's (the bulk of the trail): a member actor, details with
    counts only."""
    from registry.actors import Actor
    from registry.audit_actions import AuditAction
    from registry.models import Member
    from registry.services.audit import audit_build

    member = Member.objects.order_by("pk").first()
    actor = Actor("member", member=member) if member else Actor.system()
    events = [
        audit_build(
            actor=actor,
            action=AuditAction.LOOKUP_PERFORMED,
            object_type="lookup",
            object_id=f"0190a1b2-c3d4-7e5f-8a9b-{n:012x}",
            details={
                "purpose": "credit_review",
                "identifiers": 3,
                "distinct_identifiers": 3,
                "consent_reference": True,
                "matched": n % 7 == 0,
            },
        )
        for n in range(count)
    ]
    for event in events:
        event.api_key_prefix = "bnchaudt"
    return events


def insert_events(count: int) -> None:
    from django.db import transaction

    from registry.services.audit import audit_record_many

    done = 0
    while done < count:
        size = min(5000, count - done)
        with transaction.atomic():
            audit_record_many(lookup_like_events(size))
        done += size


def backlog(events: int) -> dict:
    from registry.services.audit import audit_seal_lag_seconds
    from registry.services.jobs.housekeeping import audit_seal_run

    audit_seal_run()  # whatever an earlier run left unsealed: not part of the figure
    insert_events(events)
    started = time.perf_counter()
    summary = audit_seal_run()
    seconds = time.perf_counter() - started
    return {
        "events": events,
        "sealed": summary["sealed"],
        "seconds": round(seconds, 3),
        "events_per_second": round(summary["sealed"] / seconds),
        "lag_after": round(audit_seal_lag_seconds(), 1),
    }


def writer(env: dict, rate: int, seconds: float, written) -> None:
    bench_env.django_setup(env)
    from django.db import transaction

    from registry.services.audit import audit_record_many

    started = time.perf_counter()
    batches = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate / WRITER_BATCH)
        if batches >= due:
            time.sleep(WRITER_BATCH / rate / 4)
            continue
        with transaction.atomic():
            audit_record_many(lookup_like_events(WRITER_BATCH))
        batches += 1
        written.value = batches * WRITER_BATCH


def steady(env: dict, rate: int, seconds: float) -> dict:
    from registry.services.audit import audit_seal_lag_seconds
    from registry.services.jobs.housekeeping import audit_seal_run

    audit_seal_run()
    context = multiprocessing.get_context("spawn")  # a fresh Django, its own connection
    written = context.Value("q", 0)
    process = context.Process(target=writer, args=(env, rate, seconds, written))
    process.start()
    started = time.perf_counter()
    sealed, lags, busy = 0, [], 0.0
    while process.is_alive() or not lags:
        next_run = started + JOB_INTERVAL * (len(lags) + 1)
        time.sleep(max(0.0, next_run - time.perf_counter()))
        run_started = time.perf_counter()
        sealed += audit_seal_run()["sealed"]
        busy += time.perf_counter() - run_started
        lags.append(round(audit_seal_lag_seconds(), 1))
    process.join()
    sealed += audit_seal_run()["sealed"]  # what the writer's last batches left
    elapsed = time.perf_counter() - started
    return {
        "target_rate": rate,
        "written": written.value,
        "written_per_second": round(written.value / seconds),
        "sealed": sealed,
        "sealer_busy_seconds": round(busy, 2),
        "sealed_per_busy_second": round(sealed / busy) if busy else None,
        "lag_after_each_run": lags,
        "elapsed": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2000, help="steady: events/s written")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args()
    env = bench_env.bench_environment(os.environ.get("DATABASE_URL", ""))
    bench_env.django_setup(env)
    if not args.no_migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    result = {"cpus": os.cpu_count(), "backlog": backlog(args.events)}
    print(
        f"audit_seal backlog: {result['backlog']['sealed']} events sealed in "
        f"{result['backlog']['seconds']} s = {result['backlog']['events_per_second']} events/s",
        file=sys.stderr,
    )
    if args.steady_seconds > 0:
        result["steady"] = steady(env, args.rate, args.steady_seconds)
        print(
            f"audit_seal steady: {result['steady']['written_per_second']} events/s written, "
            f"sealer busy {result['steady']['sealer_busy_seconds']} s of "
            f"{result['steady']['elapsed']} s, lag after each run "
            f"{result['steady']['lag_after_each_run']} s",
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

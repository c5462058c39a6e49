"""Faults: the registry must not lose an acknowledged report and must not fall over.

The module runs its OWN PostgreSQL and Redis (tests/support/private_services.py) on free loopback
ports, and the real processes on top of them: gunicorn with deploy/gunicorn.conf.py, and for
the broker test a Celery worker and beat with the systemd units' command lines. Then:

1. PostgreSQL is killed (immediate shutdown, like a crash) while clients submit cases with
   Idempotency-Keys and look up, and started again a few seconds later. During the outage
   every answer is a 503 problem with Retry-After, within a timeout; afterwards the server
   recovers by itself; every 201 is in the database; retries created nothing twice.
2. Redis is stopped: submissions, lookups and disputes still succeed (the rate limiter fails
   open, side effects wait in the outbox); once Redis is back, beat's outbox sweep publishes
   the waiting task and the worker runs it.
3. The audit trail verifies as intact after all of it.

A Celery worker killed in the middle of a job is the jobs area's test:
tests/test_jobs_worker.py::test_a_worker_killed_mid_batch_leaves_nothing_the_next_run_does_not_finish
(a worker SIGKILLed inside a batch: the batch rolls back whole, the next run finishes).
"""

import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
import requests

from tests.support.factories import case_payload, identifier
from tests.support.private_services import (
    Process,
    manage,
    migrate_and_seed,
    private_postgres,
    private_redis,
    registry_env,
    start_web,
    time_limit,
    unit_command,
    wait_for,
)

pytestmark = pytest.mark.chaos

CASES = "/api/v1/cases"
LOOKUPS = "/api/v1/lookups"
DISPUTES = "/api/v1/disputes"
REQUEST_TIMEOUT = 15  # seconds: no request may hang longer (the database timeout is 2 s)
OUTAGE_SECONDS = 4
RECOVERY_BOUND_SECONDS = 10


@dataclass
class Stack:
    pg: object
    redis: object
    env: dict
    keys: dict
    web: Process
    base: str
    logs: object
    extra: dict = field(default_factory=dict)

    def session(self, who: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.keys[who]}"
        return session

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.pg.url(), connect_timeout=5, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("chaos-logs")
    with private_postgres() as pg, private_redis() as redis:
        with time_limit(180):
            pg.create_database("registry")
            env = registry_env(
                database_url=pg.url(), redis_url=redis.url(0), broker_url=redis.url(1)
            )
            keys = migrate_and_seed(env)
            web, base = start_web(env, logs / "web.log")
        try:
            yield Stack(pg, redis, env, keys, web, base, logs)
        finally:
            web.stop()


@dataclass
class Outcome:
    kind: str  # submit | lookup
    key: str
    started: float
    elapsed: float
    status: int | None
    error: str = ""
    content_type: str = ""
    code: str = ""
    retry_after: str | None = None
    case_id: str | None = None
    replayed: bool = False


def call(
    session: requests.Session, base: str, kind: str, path: str, body: dict, key: str = ""
) -> Outcome:
    headers = {"Idempotency-Key": key} if key else {}
    started = time.monotonic()
    try:
        response = session.post(base + path, json=body, headers=headers, timeout=REQUEST_TIMEOUT)
    except requests.RequestException as exc:
        return Outcome(kind, key, started, time.monotonic() - started, None, error=repr(exc))
    outcome = Outcome(
        kind,
        key,
        started,
        time.monotonic() - started,
        response.status_code,
        content_type=response.headers.get("Content-Type", ""),
        retry_after=response.headers.get("Retry-After"),
        replayed=response.headers.get("Idempotent-Replayed") == "true",
    )
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    outcome.code = payload.get("code", "") if isinstance(payload, dict) else ""
    if response.status_code == 201:
        outcome.case_id = payload["id"]
    return outcome


def submitter(stack: Stack, stop: threading.Event, outcomes: list, bodies: dict) -> None:
    """Submits cases one after another; retries each on 503 with the same key and body,
    as a member's client does, until it gets another answer."""
    session = stack.session("ALICE_BANK")
    while not stop.is_set():
        key = f"chaos-{uuid.uuid4().hex}"
        bodies[key] = case_payload()
        for _attempt in range(100):  # bounded: 100 x (2 s timeout + 0.2 s) at most
            outcome = call(session, stack.base, "submit", CASES, bodies[key], key)
            outcomes.append(outcome)
            if outcome.status != 503:
                break
            time.sleep(0.2)


def looker(stack: Stack, stop: threading.Event, outcomes: list, token: dict) -> None:
    session = stack.session("BOB_LOANS")
    body = {"purpose": "loan_application", "identifiers": [token]}
    while not stop.is_set():
        outcomes.append(call(session, stack.base, "lookup", LOOKUPS, body))
        time.sleep(0.05)


def first_success_after(outcomes: list, kind: str, moment: float, status: int) -> float | None:
    done = [
        o.started + o.elapsed
        for o in list(outcomes)
        if o.kind == kind and o.started >= moment and o.status == status
    ]
    return min(done) if done else None


def test_it_survives_a_postgres_restart_without_losing_or_doubling_a_report(stack):
    with time_limit(150):
        alice, bob = stack.session("ALICE_BANK"), stack.session("BOB_LOANS")
        token = identifier("phone", "+8613900000001")
        first = alice.post(
            stack.base + CASES, json=case_payload(identifiers=[token]), timeout=REQUEST_TIMEOUT
        )
        assert first.status_code == 201, first.text
        outcomes: list[Outcome] = []
        bodies: dict[str, dict] = {}
        stop = threading.Event()
        threads = [
            threading.Thread(target=submitter, args=(stack, stop, outcomes, bodies)),
            threading.Thread(target=looker, args=(stack, stop, outcomes, token)),
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for(
                lambda: sum(o.status == 201 for o in outcomes) >= 3,
                30,
                "submissions before the outage",
            )
            outage_started = time.monotonic()
            stack.pg.stop("immediate")
            time.sleep(OUTAGE_SECONDS / 2)
            ready = requests.get(stack.base + "/readyz", timeout=REQUEST_TIMEOUT)
            time.sleep(OUTAGE_SECONDS / 2)
            stack.pg.start()
            restarted = time.monotonic()
            wait_for(
                lambda: (
                    first_success_after(outcomes, "submit", restarted, 201)
                    and first_success_after(outcomes, "lookup", restarted, 200)
                ),
                RECOVERY_BOUND_SECONDS * 2,
                "the API to recover",
            )
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not any(thread.is_alive() for thread in threads)

        # No hang, no 500, no dropped connection: only success or 503.
        assert [o for o in outcomes if o.error] == []
        assert max(o.elapsed for o in outcomes) < REQUEST_TIMEOUT
        assert {o.status for o in outcomes if o.kind == "submit"} <= {201, 503}
        assert {o.status for o in outcomes if o.kind == "lookup"} <= {200, 503}

        # The outage was seen, and every refusal is a 503 problem with Retry-After.
        unavailable = [o for o in outcomes if o.status == 503]
        assert {o.kind for o in unavailable} == {"submit", "lookup"}
        for o in unavailable:
            assert o.content_type.startswith("application/problem+json"), o
            assert o.code == "service_unavailable", o
            assert o.retry_after is not None and int(o.retry_after) >= 1, o
        assert all(o.started + o.elapsed >= outage_started for o in unavailable)
        assert ready.status_code == 503 and "database" in ready.json()["failed"]

        # It recovered by itself, within seconds.
        recovered = max(
            first_success_after(outcomes, "submit", restarted, 201),
            first_success_after(outcomes, "lookup", restarted, 200),
        )
        assert recovered - restarted < RECOVERY_BOUND_SECONDS
        stack.extra["recovery_seconds"] = round(recovered - restarted, 2)
        print(
            f"chaos/postgres: {len(outcomes)} calls, {len(unavailable)} answered 503, "
            f"recovered {recovered - restarted:.2f} s after the restart, "
            f"slowest call {max(o.elapsed for o in outcomes):.2f} s"
        )

        assert_every_acknowledged_report_is_stored_once(stack, outcomes, bodies, first.json()["id"])
        assert_a_retry_replays_instead_of_creating(stack, outcomes, bodies)
        # Lookups after the restart still find the case reported before it.
        after = bob.post(
            stack.base + LOOKUPS,
            timeout=REQUEST_TIMEOUT,
            json={"purpose": "loan_application", "identifiers": [token]},
        )
        assert after.status_code == 200 and after.json()["results"][0]["matched"] is True


def assert_every_acknowledged_report_is_stored_once(stack, outcomes, bodies, first_id):
    submits = [o for o in outcomes if o.kind == "submit"]
    final = {}
    for o in submits:
        final[o.key] = o  # in order: the last attempt of each key is its final answer
    assert {o.status for o in final.values()} == {201}
    # Some submissions were caught by the outage and retried with their key.
    retried = {o.key for o in submits if o.status == 503}
    assert retried and retried <= set(final)
    acknowledged = {o.case_id for o in submits if o.status == 201}
    rows = stack.sql(
        "SELECT c.id::text, c.reference FROM registry_case c "
        "JOIN registry_member m ON m.id = c.member_id WHERE m.code = %s",
        ["ALICE_BANK"],
    )
    stored = {case_id for case_id, _reference in rows}
    assert acknowledged <= stored
    references = [reference for _case_id, reference in rows]
    assert len(references) == len(set(references))  # no reference stored twice
    # Exactly one case per key (plus the case submitted before the clients started).
    assert stored == acknowledged | {first_id}
    assert len(stored) == len(final) + 1
    expected_references = {bodies[key]["reference"] for key in final}
    assert expected_references <= set(references)


def assert_a_retry_replays_instead_of_creating(stack, outcomes, bodies):
    session = stack.session("ALICE_BANK")
    key = next(o.key for o in outcomes if o.kind == "submit" and o.status == 201)
    original = next(o.case_id for o in outcomes if o.key == key and o.status == 201)
    before = stack.sql("SELECT count(*) FROM registry_case")[0][0]
    again = call(session, stack.base, "submit", CASES, bodies[key], key)
    assert (again.status, again.case_id, again.replayed) == (201, original, True)
    assert stack.sql("SELECT count(*) FROM registry_case")[0][0] == before


def test_it_keeps_serving_without_redis_and_runs_the_queued_work_when_it_is_back(stack):
    with time_limit(240):
        worker = Process(unit_command("registry-worker"), stack.env, stack.logs / "worker.log")
        beat = Process(unit_command("registry-beat"), stack.env, stack.logs / "beat.log")
        worker.start()
        beat.start()
        try:
            run_without_redis_then_with_it(stack, worker)
        finally:
            beat.stop()
            worker.stop()


def run_without_redis_then_with_it(stack: Stack, worker: Process) -> None:
    alice, bob = stack.session("ALICE_BANK"), stack.session("BOB_LOANS")
    token = identifier("phone", "+8613900000002")
    stack.redis.stop()

    started = time.monotonic()
    submitted = alice.post(
        stack.base + CASES, json=case_payload(identifiers=[token]), timeout=REQUEST_TIMEOUT
    )
    assert submitted.status_code == 201, submitted.text
    looked_up = bob.post(
        stack.base + LOOKUPS,
        timeout=REQUEST_TIMEOUT,
        json={"purpose": "loan_application", "identifiers": [token]},
    )
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["results"][0]["matched"] is True
    disputed = bob.post(
        stack.base + DISPUTES,
        timeout=REQUEST_TIMEOUT,
        json={
            "case_id": submitted.json()["id"],
            "identifier": token,
            "reason": "not_me",
            "statement": "Chaos test.",
        },
    )
    assert disputed.status_code == 201, disputed.text
    dispute_id = disputed.json()["id"]
    stack.extra["seconds_for_three_calls_without_redis"] = round(time.monotonic() - started, 2)
    ready = requests.get(stack.base + "/readyz", timeout=REQUEST_TIMEOUT)
    assert ready.status_code == 503 and "broker" in ready.json()["failed"]

    # The notice to the reporting member waits in the outbox, unpublished.
    waiting = stack.sql(
        "SELECT task, published_at FROM registry_outboxtask WHERE kwargs->>'dispute_id' = %s",
        [dispute_id],
    )
    assert waiting and all(delivered is None for _task, delivered in waiting)
    assert not notice_sent(stack, dispute_id)

    stack.redis.start()
    restored = time.monotonic()

    # Beat's outbox sweep (every 30 s, for rows older than 30 s) publishes it; the worker
    # sends the notice. Nobody intervenes.
    wait_for(
        lambda: notice_sent(stack, dispute_id) or not worker.alive(),
        150,
        "the queued notice to be sent after Redis came back",
        interval=1,
    )
    assert worker.alive(), worker.output()[-3000:]
    delivered = stack.sql(
        "SELECT done_at FROM registry_outboxtask WHERE kwargs->>'dispute_id' = %s",
        [dispute_id],
    )
    assert delivered and all(row[0] is not None for row in delivered)
    assert len(notice_sent(stack, dispute_id)) == 1
    print(
        f"chaos/redis: three calls without Redis took "
        f"{stack.extra['seconds_for_three_calls_without_redis']} s; queued notice sent "
        f"{time.monotonic() - restored:.1f} s after Redis came back"
    )


def notice_sent(stack: Stack, dispute_id: str) -> list:
    return stack.sql(
        "SELECT id FROM registry_auditevent WHERE action = %s AND object_id = %s",
        ["dispute.filed_notice_sent", dispute_id],
    )


def test_it_keeps_the_audit_trail_intact_after_the_faults(stack):
    with time_limit(120):
        result = manage(stack.env, "verify_audit", "--seal-first")
        assert "Audit trail intact" in result.stdout, result.stdout + result.stderr
        events = stack.sql("SELECT count(*) FROM registry_auditevent")[0][0]
        # Every event is sealed but the one verify_audit recorded of its own run, after it.
        unsealed = stack.sql(
            """SELECT e.action FROM registry_auditevent e WHERE NOT EXISTS
               (SELECT FROM registry_auditseal s WHERE s.event_id = e.id)"""
        )
        assert events > 1 and unsealed == [("audit.verified",)], unsealed

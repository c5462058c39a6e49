"""The deployment, end to end: what deploy/ ships, run as an operator would run it.

gunicorn starts with deploy/gunicorn.conf.py, and the Celery worker and beat start with the
ExecStart= command lines of deploy/systemd/registry-{web,worker,beat}.service (read from the
unit files, so that a broken unit fails this test), against a fresh PostgreSQL database and a
Redis of their own (tests/private_services.py). Then a member submits a case, another looks
it up, and the expiry job, sent through the broker like beat sends it, expires the case in
the worker; beat's own schedule runs the audit sealer meanwhile.
"""

import time
from datetime import timedelta

import psycopg
import pytest
import requests
from celery import Celery
from django.utils import timezone

from tests.factories import case_payload, identifier
from tests.private_services import (
    Process,
    migrate_and_seed,
    private_postgres,
    private_redis,
    registry_env,
    start_web,
    time_limit,
    unit_command,
    wait_for,
)

pytestmark = pytest.mark.e2e
TIMEOUT = 15


def test_it_runs_a_submission_a_lookup_and_an_expiry_on_the_deployed_processes(tmp_path):
    with private_postgres() as pg, private_redis() as redis, time_limit(240):
        pg.create_database("registry_e2e")
        env = registry_env(database_url=pg.url("registry_e2e"), redis_url=redis.url(0),
                           broker_url=redis.url(1))
        keys = migrate_and_seed(env)
        web, base = start_web(env, tmp_path / "web.log")
        worker = Process(unit_command("registry-worker"), env, tmp_path / "worker.log")
        beat = Process(unit_command("registry-beat"), env, tmp_path / "beat.log")
        worker.start()
        beat.start()
        try:
            run_the_scenario(base, keys, pg.url("registry_e2e"), redis.url(1), worker, beat)
            assert_access_log_keeps_tokens_out(base, keys, web)
        finally:
            beat.stop()
            worker.stop()
            web.stop()


def run_the_scenario(base, keys, database_url, broker_url, worker, beat) -> None:
    alice, bob = session(keys["ALICE_BANK"]), session(keys["BOB_LOANS"])
    token = identifier("phone", "+8613900000077")
    lookup_body = {"purpose": "loan_application", "identifiers": [token]}

    ready = alice.get(f"{base}/readyz", timeout=TIMEOUT)
    assert ready.status_code == 200, ready.text

    submitted = alice.post(f"{base}/api/v1/cases", json=case_payload(identifiers=[token]),
                           headers={"Idempotency-Key": "e2e-1"}, timeout=TIMEOUT)
    assert submitted.status_code == 201, submitted.text
    case = submitted.json()

    found = bob.post(f"{base}/api/v1/lookups", json=lookup_body, timeout=TIMEOUT)
    assert found.status_code == 200, found.text
    result = found.json()["results"][0]
    assert result["matched"] is True
    assert [c["case_id"] for c in result["cases"]] == [case["id"]]

    # The expiry job as beat sends it, through the broker, to the worker: "now" moved past
    # the case's retention instead of waiting five years.
    after_retention = timezone.now() + timedelta(days=5 * 366 + 2)
    sender = Celery("e2e-sender", broker=broker_url)
    sender.send_task("registry.jobs.expiry", kwargs={"now_iso": after_retention.isoformat()},
                     queue="registry")

    def expired() -> bool:
        assert worker.alive(), worker.output()[-3000:]
        answer = alice.get(f"{base}/api/v1/cases/{case['id']}", timeout=TIMEOUT)
        return answer.status_code == 200 and answer.json()["status"] == "expired"

    wait_for(expired, 90, "the worker to expire the case", interval=0.5)
    gone = bob.post(f"{base}/api/v1/lookups", json=lookup_body, timeout=TIMEOUT)
    assert gone.status_code == 200 and gone.json()["results"][0]["matched"] is False
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        left = conn.execute("SELECT count(*) FROM registry_caseidentifier WHERE case_id = %s",
                            [case["id"]]).fetchone()[0]
        assert left == 0  # the identifiers were purged, not just hidden

    # Beat runs the schedule by itself: the audit sealer (every 10 s) seals our events.
    def sealed_by_beat() -> bool:
        assert beat.alive(), beat.output()[-3000:]
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT count(*) FROM registry_jobrun WHERE job = 'audit_seal' "
                "AND status = 'succeeded'").fetchone()[0] > 0

    wait_for(sealed_by_beat, 60, "beat to have the worker seal the audit trail", interval=1)


def assert_access_log_keeps_tokens_out(base, keys, web) -> None:
    officer = session(keys["officer"])
    secret_token = "ab" * 64
    answer = officer.get(f"{base}/api/v1/compliance/subject-access",
                         params={"kind": "phone", "token": secret_token}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    time.sleep(0.5)  # the access log line is written after the response
    log = web.output()
    assert '"path": "/api/v1/compliance/subject-access"' in log
    assert secret_token not in log and "token=" not in log
    assert keys["officer"] not in log


def session(key: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {key}"
    return s

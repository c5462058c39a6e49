"""The deployment, end to end: what deploy/ ships, run as an operator would run it.

gunicorn starts with deploy/gunicorn.conf.py, and the Celery worker and beat start with the
ExecStart= command lines of deploy/systemd/registry-{web,worker,beat}.service (read from the
unit files, so that a broken unit fails this test), against a fresh PostgreSQL database and a
Redis of their own (tests/support/private_services.py). The database is provisioned by
deploy/postgres/roles.sql: migrations run as its owner role, every process as its runtime
role. Then a member submits a case, another looks it up, and the expiry job, sent through the
broker like beat sends it, expires the case in the worker; beat's own schedule runs the audit
sealer meanwhile, which signs a checkpoint that `verify_audit --checkpoint` accepts.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import requests
from celery import Celery

from tests.support.factories import case_payload, identifier
from tests.support.private_services import (
    ROOT,
    SEED_SCRIPT,
    Process,
    free_port,
    manage,
    port_answers,
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
DEPLOY = ROOT / "deploy"


def provision_roles(superuser_url: str) -> tuple[str, str]:
    """Run deploy/postgres/roles.sql as the superuser; the runtime and owner URLs."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute((DEPLOY / "postgres" / "roles.sql").read_text())
    return (
        superuser_url.replace("postgres@", "registry_app@"),
        superuser_url.replace("postgres@", "registry_owner@"),
    )


def test_it_runs_a_submission_a_lookup_and_an_expiry_on_the_deployed_processes(tmp_path):
    with private_postgres() as pg, private_redis() as redis, time_limit(240):
        pg.create_database("registry_e2e")
        app_url, owner_url = provision_roles(pg.url("registry_e2e"))
        env = registry_env(
            database_url=app_url,
            redis_url=redis.url(0),
            broker_url=redis.url(1),
            REGISTRY_AUDIT_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        )
        manage({**env, "DATABASE_OWNER_URL": owner_url}, "migrate", "--no-input", timeout=300)
        out = manage(env, "shell", "-c", SEED_SCRIPT).stdout
        keys = json.loads(re.search(r"^KEYS=(.*)$", out, flags=re.MULTILINE).group(1))
        web, base = start_web(env, tmp_path / "web.log")
        worker = Process(unit_command("registry-worker"), env, tmp_path / "worker.log")
        beat = Process(unit_command("registry-beat"), env, tmp_path / "beat.log")
        worker.start()
        beat.start()
        try:
            run_the_scenario(base, keys, pg.url("registry_e2e"), redis.url(1), worker, beat)
            assert_access_log_keeps_tokens_out(base, keys, web)
            assert_the_worker_signed_a_checkpoint(env, tmp_path / "checkpoints")
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

    submitted = alice.post(
        f"{base}/api/v1/cases",
        json=case_payload(identifiers=[token]),
        headers={"Idempotency-Key": "e2e-1"},
        timeout=TIMEOUT,
    )
    assert submitted.status_code == 201, submitted.text
    case = submitted.json()

    found = bob.post(f"{base}/api/v1/lookups", json=lookup_body, timeout=TIMEOUT)
    assert found.status_code == 200, found.text
    result = found.json()["results"][0]
    assert result["matched"] is True
    assert [c["case_id"] for c in result["cases"]] == [case["id"]]

    # The expiry job as beat sends it (no arguments), through the broker, to the worker,
    # once the case's retention is over: dated back in the database instead of waiting five
    # years (the task takes no "now" from the broker).
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute(
            "UPDATE registry_case SET confirmed_at = current_date - 1827,"
            " expires_at = current_date - 1 WHERE id = %s",
            [case["id"]],
        )
    sender = Celery("e2e-sender", broker=broker_url)
    sender.send_task("registry.jobs.expiry", queue="registry")

    def expired() -> bool:
        assert worker.alive(), worker.output()[-3000:]
        answer = alice.get(f"{base}/api/v1/cases/{case['id']}", timeout=TIMEOUT)
        return answer.status_code == 200 and answer.json()["status"] == "expired"

    wait_for(expired, 90, "the worker to expire the case", interval=0.5)
    gone = bob.post(f"{base}/api/v1/lookups", json=lookup_body, timeout=TIMEOUT)
    assert gone.status_code == 200 and gone.json()["results"][0]["matched"] is False
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        left = conn.execute(
            "SELECT count(*) FROM registry_caseidentifier WHERE case_id = %s", [case["id"]]
        ).fetchone()[0]
        assert left == 0  # the identifiers were purged, not just hidden

    # Beat runs the schedule by itself: the audit sealer (every 10 s) seals our events.
    def sealed_by_beat() -> bool:
        assert beat.alive(), beat.output()[-3000:]
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return (
                conn.execute(
                    "SELECT count(*) FROM registry_jobrun WHERE job = 'audit_seal' "
                    "AND status = 'succeeded'"
                ).fetchone()[0]
                > 0
            )

    wait_for(sealed_by_beat, 60, "beat to have the worker seal the audit trail", interval=1)


def assert_the_worker_signed_a_checkpoint(env: dict, folder: Path) -> None:
    """The sealer (in the worker, as the runtime role) signed the chain's head into the
    checkpoint directory; verify_audit proves the chain against that file."""
    wait_for(lambda: any(folder.glob("audit-checkpoint-*.json")), 30, "a checkpoint file")
    (written, *_) = sorted(folder.glob("audit-checkpoint-*.json"))
    assert json.loads(written.read_text())["format"].startswith("consortium-registry-audit")
    result = manage(env, "verify_audit", "--checkpoint", str(written))
    assert "Audit trail intact" in result.stdout and "1 from files" in result.stdout


def assert_access_log_keeps_tokens_out(base, keys, web) -> None:
    officer = session(keys["officer"])
    secret_token = "ab" * 64
    answer = officer.get(
        f"{base}/api/v1/compliance/subject-access",
        params={"kind": "phone", "token": secret_token},
        timeout=TIMEOUT,
    )
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


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.mark.skipif(
    NGINX is None or shutil.which("openssl") is None,
    reason="needs nginx and openssl (Debian: nginx-light, openssl)",
)
def test_it_serves_through_the_nginx_site_with_tls_headers_and_the_body_limit(tmp_path):
    """deploy/nginx/registry.conf in front of gunicorn, on loopback ports of its own."""
    with time_limit(120):
        # Only /healthz reaches the application here: no database or Redis is needed.
        env = registry_env(
            database_url="postgres://postgres@127.0.0.1:9/unused",
            redis_url="redis://127.0.0.1:9/0",
            SECURE_HSTS_SECONDS="3600",
        )
        web, base = start_web(env, tmp_path / "web.log", workers=1, threads=2)
        try:
            http_port, https_port = free_port(), free_port()
            nginx = start_nginx(tmp_path, base.rsplit(":", 1)[1], http_port, https_port)
            try:
                check_the_site(
                    f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", web
                )
            finally:
                nginx.stop()
        finally:
            web.stop()


def start_nginx(tmp_path: Path, upstream_port: str, http_port: int, https_port: int) -> Process:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=registry.example",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = (DEPLOY / "nginx" / "registry.conf").read_text()
    for old, new in [
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{upstream_port}"),
        ("/etc/nginx/registry_proxy.conf", str(DEPLOY / "nginx" / "registry_proxy.conf")),
        ("/etc/ssl/registry/fullchain.pem", str(tmp_path / "cert.pem")),
        ("/etc/ssl/registry/privkey.pem", str(tmp_path / "key.pem")),
        ("/var/log/nginx/", f"{tmp_path}/"),
        ("ssl_stapling on;", ""),  # a self-signed certificate has no OCSP responder
        ("ssl_stapling_verify on;", ""),
    ]:
        assert old in site, old
        site = site.replace(old, new)
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off; worker_processes 1; pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\nevents {{}}\n"
        f"http {{ {temp} access_log {tmp_path}/access.log; include {tmp_path}/site.conf; }}\n"
    )
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    nginx = Process(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        dict(os.environ),
        tmp_path / "nginx.out",
    )
    nginx.start()
    wait_for(lambda: port_answers(https_port), 15, "nginx to listen")
    return nginx


def check_the_site(http: str, https: str, web: Process) -> None:
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    # Plain HTTP: health checks answer, everything else goes to HTTPS.
    assert requests.get(f"{http}/healthz", timeout=TIMEOUT).status_code == 200
    moved = requests.get(f"{http}/api/v1/lookups", timeout=TIMEOUT, allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"].startswith("https://")
    # HTTPS: Django sees the request as secure (X-Forwarded-Proto) and sends HSTS; the request
    # id is nginx's, passed on in X-Request-Id.
    answer = requests.get(f"{https}/healthz", timeout=TIMEOUT, verify=False)  # noqa: S501 - self-signed
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=3600")
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])
    # /readyz is not for the internet: nginx answers 404 itself, on either port.
    assert requests.get(f"{http}/readyz", timeout=TIMEOUT).status_code == 404
    hidden = requests.get(f"{https}/readyz", timeout=TIMEOUT, verify=False)  # noqa: S501
    assert hidden.status_code == 404 and "X-Request-Id" not in hidden.headers
    # A body over 2 MiB is refused by nginx itself: it never reaches gunicorn.
    huge = requests.post(
        f"{https}/api/v1/lookups",
        data=b"x" * (3 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
        verify=False,  # noqa: S501 - our own self-signed test certificate
    )
    assert huge.status_code == 413
    time.sleep(0.5)
    assert '"path": "/api/v1/lookups"' not in web.output()

"""The API through a real PgBouncer, and on a primary with a real streaming replica.

The module starts its own primary (initdb), a streaming replica of it (pg_basebackup -R, a
second cluster), a Redis, and gunicorn with deploy/gunicorn.conf.py (tests/private_services.py);
PgBouncer runs deploy/pgbouncer/pgbouncer.ini with its ports and paths replaced.

- PgBouncer 1.18 (Debian 12) refuses the `options` startup parameter the registry sends
  (plan_cache_mode) and, in transaction mode, cannot keep a prepared statement: the
  registry's hot statements collide on a shared server connection. With
  DATABASE_POOL_MODE=transaction the registry sends no `options`, prepares nothing and
  declares no server-side cursor, and the API then runs through a transaction pool of two
  server connections shared by many clients; in session mode prepared statements stay on.
- With DATABASE_REPLICA_URL the router sends a member's reads of its cases to the replica;
  while the replica lags (replay paused) lookups, submissions and disputes still read their
  own writes on the primary, and a case read shows the case once the replica has replayed it;
  while the replica is down, those reads answer 503 with Retry-After (never a 500) and
  everything else goes on; the reads come back by themselves with the replica.
"""

import subprocess
import threading

import psycopg
import pytest
import requests

from tests.support.factories import case_payload, fresh_phone, identifier
from tests.support.private_services import (
    manage,
    migrate_and_seed,
    pgbouncer_binary,
    private_pgbouncer,
    private_postgres,
    private_redis,
    registry_env,
    start_web,
    time_limit,
    wait_for,
)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        pgbouncer_binary() is None,
        reason="pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)",
    ),
]

CASES = "/api/v1/cases"
LOOKUPS = "/api/v1/lookups"
DISPUTES = "/api/v1/disputes"
TIMEOUT = 15


class Api:
    def __init__(self, base: str, keys: dict):
        self.base, self.keys = base, keys

    def post(self, who: str, path: str, body: dict) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=self._auth(who), timeout=TIMEOUT)

    def get(self, who: str, path: str) -> requests.Response:
        return requests.get(self.base + path, headers=self._auth(who), timeout=TIMEOUT)

    def _auth(self, who: str) -> dict:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def submit(self, token: dict) -> str:
        response = self.post("ALICE_BANK", CASES, case_payload(identifiers=[token]))
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def lookup_matches(self, token: dict) -> bool:
        response = self.post(
            "BOB_LOANS", LOOKUPS, {"purpose": "loan_application", "identifiers": [token]}
        )
        assert response.status_code == 200, response.text
        return response.json()["results"][0]["matched"]

    def dispute(self, case_id: str, token: dict) -> requests.Response:
        body = {
            "case_id": case_id,
            "identifier": token,
            "reason": "not_me",
            "statement": "Replica test.",
        }
        return self.post("BOB_LOANS", DISPUTES, body)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("replica-logs")
    with time_limit(120), private_postgres() as primary, private_redis() as redis:
        primary.create_database("registry")
        env = registry_env(
            database_url=primary.url(),
            redis_url=redis.url(0),
            broker_url=redis.url(1),
            REGISTRY_DISPUTE_QUOTA_PER_DAY="1000",  # every member session files disputes
        )
        keys = migrate_and_seed(env)
        # What docs/operations.md tells operators behind PgBouncer (the startup option is
        # not sent through it): the plan mode on the role.
        sql(primary, "ALTER ROLE postgres SET plan_cache_mode = force_generic_plan")
        with private_postgres(replica_of=primary) as replica:
            yield {"primary": primary, "replica": replica, "env": env, "keys": keys, "logs": logs}


def sql(server, query: str, params=()) -> list[tuple]:
    with psycopg.connect(server.url(), connect_timeout=5, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def caught_up(primary, replica) -> bool:
    target = sql(primary, "SELECT pg_current_wal_lsn()::text")[0][0]
    return sql(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0]


def bouncer_show(bouncer, psql_bindir, what: str) -> list[list[str]]:
    """SHOW <what> on PgBouncer's admin console (simple protocol: psql)."""
    command = [str(psql_bindir / "psql"), "-h", "127.0.0.1", "-p", str(bouncer.port)]
    command += ["-U", "postgres", "-d", "pgbouncer", "-At", "-F", "|", "-c", f"SHOW {what}"]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


def test_it_refuses_pgbouncer_1_18_the_registry_s_defaults(cluster):
    """Why DATABASE_POOL_MODE exists: without it the registry cannot even connect through
    PgBouncer 1.18, and prepared statements collide on a transaction pool."""
    with (
        time_limit(60),
        private_pgbouncer(
            {"registry": cluster["primary"]}, pool_mode="transaction", pool_size=1
        ) as bouncer,
    ):
        env = {**cluster["env"], "DATABASE_URL": bouncer.url()}
        with pytest.raises(RuntimeError, match="unsupported startup parameter: options"):
            manage(env, "shell", "-c", "from django.db import connection; connection.connect()")
        # Two clients, one server connection: the second client's first prepared statement
        # takes the name the first one's already holds on that server connection.
        url = bouncer.url().replace("postgres://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as a, psycopg.connect(url, autocommit=True) as b:
            a.execute("SELECT 1", prepare=True)
            with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
                b.execute("SELECT 2", prepare=True)


@pytest.mark.parametrize(
    ("pool_mode", "pool_size", "settings"),
    [
        ("transaction", 2, {}),
        # Session mode keeps a server connection per client connection: with persistent
        # connections the pool would have to be as large as the web threads.
        ("session", 4, {"DATABASE_CONN_MAX_AGE": "0"}),
    ],
)
def test_it_serves_the_api_through_pgbouncer(cluster, pool_mode, pool_size, settings):
    primary, replica = cluster["primary"], cluster["replica"]
    with (
        time_limit(90),
        private_pgbouncer(
            {"registry": primary, "registry_replica": replica},
            pool_mode=pool_mode,
            pool_size=pool_size,
        ) as bouncer,
    ):
        env = {
            **cluster["env"],
            "DATABASE_URL": bouncer.url("registry"),
            "DATABASE_REPLICA_URL": bouncer.url("registry_replica"),
            "DATABASE_POOL_MODE": pool_mode,
            **settings,
        }
        web, base = start_web(env, cluster["logs"] / f"web-{pool_mode}.log", workers=2, threads=4)
        try:
            api = Api(base, cluster["keys"])
            failures: list[str] = []
            threads = [
                threading.Thread(target=member_session, args=(api, primary, replica, failures))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(80)
            assert failures == []
            # The role's plan mode reaches the server connections PgBouncer opens.
            shown = manage(
                env,
                "shell",
                "-c",
                "from django.db import connection\n"
                "with connection.cursor() as c:\n"
                "    c.execute('SHOW plan_cache_mode'); print(c.fetchone()[0])",
            ).stdout
            assert shown.strip().splitlines()[-1] == "force_generic_plan"
            if pool_mode == "transaction":
                # Many clients (web threads' persistent connections), at most two server
                # connections to the primary: PgBouncer multiplexed them.
                clients = [
                    r
                    for r in bouncer_show(bouncer, primary.bindir, "CLIENTS")
                    if r[2] == "registry"
                ]
                servers = [
                    r
                    for r in bouncer_show(bouncer, primary.bindir, "SERVERS")
                    if r[2] == "registry"
                ]
                assert len(clients) > pool_size >= len(servers) > 0
        finally:
            web.stop()
        assert "Traceback" not in web.output()


def member_session(api: Api, primary, replica, failures: list[str]) -> None:
    """Submit, look up, dispute, read back: what a member does, five times over."""
    try:
        for _ in range(5):
            token = identifier("phone", fresh_phone())
            case_id = api.submit(token)
            assert api.lookup_matches(token)
            disputed = api.dispute(case_id, token)
            assert disputed.status_code == 201, disputed.text
            wait_for(lambda: caught_up(primary, replica), 10, "the replica to catch up")
            read = api.get("ALICE_BANK", f"{CASES}/{case_id}")
            assert read.status_code == 200, read.text
            assert read.json()["status"] == "disputed"
    except Exception as exc:  # noqa: BLE001 - reported by the test's thread-safe list
        failures.append(repr(exc))


@pytest.fixture
def direct_web(cluster):
    """gunicorn on the primary, with the replica as DATABASE_REPLICA_URL (no pooler)."""
    env = {**cluster["env"], "DATABASE_REPLICA_URL": cluster["replica"].url()}
    web, base = start_web(env, cluster["logs"] / "web-replica.log", workers=1, threads=2)
    try:
        yield Api(base, cluster["keys"])
    finally:
        web.stop()
        assert "Traceback" not in web.output()


def test_it_reads_its_own_writes_on_the_primary_while_the_replica_lags(cluster, direct_web):
    primary, replica, api = cluster["primary"], cluster["replica"], direct_web
    with time_limit(60):
        earlier = api.submit(identifier("phone", fresh_phone()))
        wait_for(lambda: caught_up(primary, replica), 10, "the replica to catch up")
        sql(replica, "SELECT pg_wal_replay_pause()")
        try:
            token = identifier("phone", fresh_phone())
            case_id = api.submit(token)
            # The hot path runs on the primary: the case matches at once, and the dispute
            # service (which reads the case inside its transaction) finds it.
            assert api.lookup_matches(token)
            assert api.dispute(case_id, token).status_code == 201
            # A member's read of its cases goes to the replica, which has not replayed the
            # case yet: the lag is visible there, and only there.
            assert api.get("ALICE_BANK", f"{CASES}/{case_id}").status_code == 404
            assert api.get("ALICE_BANK", f"{CASES}/{earlier}").status_code == 200
            assert not caught_up(primary, replica)
        finally:
            sql(replica, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: caught_up(primary, replica), 10, "the replica to replay")
        read = api.get("ALICE_BANK", f"{CASES}/{case_id}")
        assert read.status_code == 200 and read.json()["status"] == "disputed"


def test_it_keeps_the_hot_path_up_while_the_replica_is_down(cluster, direct_web):
    primary, replica, api = cluster["primary"], cluster["replica"], direct_web
    with time_limit(60):
        replica.stop("immediate")
        try:
            token = identifier("phone", fresh_phone())
            case_id = api.submit(token)
            assert api.lookup_matches(token)
            assert api.dispute(case_id, token).status_code == 201
            down = api.get("ALICE_BANK", f"{CASES}/{case_id}")
            assert down.status_code == 503, down.text
            assert down.headers["Content-Type"].startswith("application/problem+json")
            assert down.json()["code"] == "service_unavailable"
            assert int(down.headers["Retry-After"]) >= 1
        finally:
            replica.start()
        wait_for(lambda: caught_up(primary, replica), 20, "the restarted replica to catch up")
        wait_for(
            lambda: api.get("ALICE_BANK", f"{CASES}/{case_id}").status_code == 200,
            15,
            "case reads to come back with the replica",
            interval=0.5,
        )

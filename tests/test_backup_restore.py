"""The restore drill: continuous archiving with pgBackRest, restored to a point in time.

A private primary archives its WAL with deploy/pgbackrest/pgbackrest.conf (paths and port
replaced) while a member submits cases through gunicorn without pause. A full backup is taken
while those writes go on; the audit trail is sealed and a signed checkpoint kept in a file,
outside the database; a target moment is noted and the writes continue past it. Then a NEW
cluster is restored from the backup and the WAL archive to that moment, and:

- `verify_audit --checkpoint FILE` passes on the restored data;
- every case acknowledged (201 received) before the target is there, and none submitted
  after it (the restore stopped where it was told to);
- the measured RPO (a commit's wait until its WAL is in the archive, without a forced switch:
  bounded by archive_timeout) and RTO (restore + replay + promotion, for this small database)
  are printed for docs/operations.md.
"""

import json
import os
import pwd
import shutil
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
import requests

from tests.support.factories import case_payload
from tests.support.private_services import (
    ROOT,
    PrivatePostgres,
    deploy_ini,
    free_port,
    manage,
    migrate_and_seed,
    pgbackrest_binary,
    private_postgres,
    private_redis,
    registry_env,
    server_owned_tempdir,
    start_web,
    time_limit,
    wait_for,
)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        pgbackrest_binary() is None,
        reason="pgbackrest is not installed (apt-get install pgbackrest; .ci/run installs it)",
    ),
]

STANZA = "registry"
ARCHIVE_TIMEOUT = 5  # seconds; deploy/pgbackrest/pgbackrest.conf recommends 60


def sql(server: PrivatePostgres, query: str, params=()) -> list[tuple]:
    with psycopg.connect(server.url(), connect_timeout=5, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


class Repository:
    """A pgBackRest repository and configuration of its own, for one primary."""

    def __init__(self, primary: PrivatePostgres):
        self.primary = primary
        self.base = server_owned_tempdir("registry-private-pgbackrest-", primary.user)
        for sub in ("repo", "log", "lock"):
            (self.base / sub).mkdir()
        self.config = self.base / "pgbackrest.conf"
        self.config.write_text(
            deploy_ini(
                ROOT / "deploy" / "pgbackrest" / "pgbackrest.conf",
                {
                    "global": {
                        "repo1-path": str(self.base / "repo"),
                        "log-path": str(self.base / "log"),
                        "lock-path": str(self.base / "lock"),
                        "process-max": "1",
                    },
                    STANZA: {
                        "pg1-path": str(primary.datadir),
                        "pg1-port": str(primary.port),
                        "pg1-socket-path": str(primary.base),
                    },
                },
            )
        )
        if primary.user:
            info = pwd.getpwnam(primary.user)
            for path in [self.base, *self.base.iterdir()]:
                os.chown(path, info.pw_uid, info.pw_gid)

    def run(self, *args: str, timeout: float = 120) -> None:
        self.primary.run_as_server_user(
            pgbackrest_binary(),
            f"--config={self.config}",
            f"--stanza={STANZA}",
            *args,
            timeout=timeout,
        )

    def archive_command(self) -> str:
        return f"'{pgbackrest_binary()} --config={self.config} --stanza={STANZA} archive-push %p'"


def submit_until(stop: threading.Event, base: str, key: str, acks: list) -> None:
    """One member submitting cases back to back; each 201 is noted with when it was sent
    and when its answer came (wall clock, as the restore target is)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    while not stop.is_set():
        sent = datetime.now(UTC)
        response = session.post(base + "/api/v1/cases", json=case_payload(), timeout=15)
        if response.status_code == 201:
            acks.append((sent, datetime.now(UTC), response.json()["id"]))


@pytest.fixture
def archiving_primary():
    """A private primary archiving its WAL into a pgBackRest repository of its own."""
    with private_postgres() as primary:
        repository = Repository(primary)
        try:
            primary.configure(
                {
                    "archive_mode": "on",
                    "archive_command": repository.archive_command(),
                    "archive_timeout": str(ARCHIVE_TIMEOUT),
                }
            )
            primary.stop()
            primary.start()
            yield primary, repository
        finally:
            shutil.rmtree(repository.base, ignore_errors=True)


def test_it_restores_a_point_in_time_with_every_acknowledged_write_and_an_intact_audit(
    tmp_path, archiving_primary
):
    primary, repository = archiving_primary
    with time_limit(150), private_redis() as redis:
        primary.create_database("registry")
        env = registry_env(
            database_url=primary.url(), redis_url=redis.url(0), broker_url=redis.url(1)
        )
        keys = migrate_and_seed(env)
        repository.run("stanza-create")
        web, base = start_web(env, tmp_path / "web.log", workers=1, threads=2)
        acks: list = []
        stop = threading.Event()
        writer = threading.Thread(target=submit_until, args=(stop, base, keys["ALICE_BANK"], acks))
        writer.start()
        try:
            wait_for(lambda: len(acks) >= 3, 20, "writes before the backup")
            backup_started = time.monotonic()
            repository.run("--type=full", "backup")  # while the writes go on
            backup_seconds = time.monotonic() - backup_started
            manage(env, "run_job", "audit_seal")
            checkpoint = tmp_path / "checkpoint.json"
            checkpoint.write_text(manage(env, "audit_checkpoint", "--now").stdout)
            assert json.loads(checkpoint.read_text())  # a signed checkpoint, kept outside
            time.sleep(1)
            target = datetime.now(UTC)
            time.sleep(2)  # writes continue past the target
        finally:
            stop.set()
            writer.join(30)
            web.stop()
        assert not writer.is_alive()
        rpo = seconds_until_archived(primary)

        before = {case_id for _sent, answered, case_id in acks if answered < target}
        after = {case_id for sent, _answered, case_id in acks if sent > target}
        assert before and after

        restored, rto = restore(repository, target, tmp_path)
        try:
            restored_env = {**env, "DATABASE_URL": restored.url()}
            verified = manage(restored_env, "verify_audit", "--checkpoint", str(checkpoint))
            assert "Audit trail intact" in verified.stdout, verified.stdout + verified.stderr
            assert "1 from files" in verified.stdout
            present = {row[0] for row in sql(restored, "SELECT id::text FROM registry_case")}
            assert before <= present, f"{len(before - present)} acknowledged cases missing"
            assert not (after & present), "the restore went past its target"
        finally:
            restored.stop("immediate")
            shutil.rmtree(restored.base, ignore_errors=True)
        print(
            f"restore drill: {len(acks)} cases acknowledged, {len(before)} before the target; "
            f"full backup {backup_seconds:.1f} s under writes; RPO (commit to archived WAL, "
            f"archive_timeout={ARCHIVE_TIMEOUT}) {rpo:.1f} s; RTO (restore, replay to the "
            f"target, promote) {rto:.1f} s"
        )


def seconds_until_archived(primary: PrivatePostgres) -> float:
    """How long the newest commit waits until the WAL segment holding it is archived, with
    no forced switch: what a primary lost at that moment would lose, in time."""
    started = time.monotonic()
    # A WAL record of our own marks "now": the segment holding it holds every earlier commit.
    # Reading pg_current_wal_insert_lsn() instead fails when a timeout switch has just
    # happened: it then names a fresh, empty segment that archive_timeout never switches.
    segment = sql(
        primary,
        "SELECT pg_walfile_name(pg_logical_emit_message(false, 'registry-rpo-probe', ''))",
    )[0][0]

    def archived() -> bool:
        last = sql(primary, "SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        return last is not None and last[:24] >= segment

    try:
        wait_for(archived, ARCHIVE_TIMEOUT * 8, "the newest WAL segment to be archived", 0.2)
    except TimeoutError:
        state = sql(primary, "SELECT * FROM pg_stat_archiver")
        log = primary.logfile.read_text()[-3000:]
        raise AssertionError(f"segment {segment} not archived: {state}\n{log}") from None
    return time.monotonic() - started


def restore(repository: Repository, target: datetime, tmp_path) -> tuple[PrivatePostgres, float]:
    """A new cluster from the backup and the archive, recovered to `target` and promoted.
    Returns it and the seconds it took (the RTO for this database)."""
    primary = repository.primary
    base = server_owned_tempdir("registry-private-pg-restored-", primary.user)
    restored = PrivatePostgres(
        bindir=primary.bindir, base=base, port=free_port(), user=primary.user
    )
    started = time.monotonic()
    repository.run(
        "restore",
        f"--pg1-path={restored.datadir}",
        "--type=time",
        f"--target={target.strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
        "--target-action=promote",
    )
    # The restored copy must not archive into the primary's stanza, nor take its port.
    restored.configure(
        {
            "port": str(restored.port),
            "unix_socket_directories": f"'{restored.base}'",
            "archive_mode": "off",
        }
    )
    restored.start(timeout=60)
    wait_for(
        lambda: not sql(restored, "SELECT pg_is_in_recovery()")[0][0],
        60,
        "the restored cluster to reach its target and promote",
        0.2,
    )
    return restored, time.monotonic() - started

"""What the database and the crypto can do on their own, to measure the API against.

`SqlLookups` performs the same lookup as POST /api/v1/lookups — matchable cases, velocity in
five windows, the Lookup row, the log rows, the sighting upserts, one audit event — as six
plain statements in one transaction over one psycopg connection, with the digests computed
beforehand (so the baseline is the database's work alone). It is written independently of
registry/selectors/lookups.py on purpose: a slow query in the application shows up as a low
API/SQL ratio instead of slowing both sides.

`bare_evaluate_rate` is RFC 9497 BlindEvaluate in a loop, in this process.
"""

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
from django.utils import timezone

WINDOWS = (
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
)

MATCH_SQL = """
    SELECT q.n, c.id, c.category_id, c.confirmed_at, c.status, c.member_id,
           c.subject_statement <> ''
    FROM unnest(%(n)s::int[], %(kind)s::text[], %(digest)s::bytea[]) AS q (n, kind, digest)
    JOIN registry_caseidentifier ci
      ON ci.digest = q.digest AND ci.kind = q.kind AND ci.pepper_version = %(version)s
    JOIN registry_case c ON c.id = ci.case_id
    WHERE c.expires_at > %(today)s
      AND (c.status = 'active'
           OR (c.status = 'disputed' AND NOT EXISTS (
                 SELECT 1 FROM registry_dispute d
                 WHERE d.case_id = c.id AND d.status IN ('open', 'responded', 'overdue')
                   AND (d.status = 'overdue' OR d.due_at <= %(now)s))))
"""

VELOCITY_SQL = f"""
    SELECT q.n, {
    ", ".join(
        f"count(*) FILTER (WHERE s.last_seen_at > %(now)s - '{span}'::interval)"
        for _name, span in WINDOWS
    )
}
    FROM unnest(%(n)s::int[], %(kind)s::text[], %(digest)s::bytea[]) AS q (n, kind, digest)
    JOIN registry_sighting s ON s.digest = q.digest AND s.kind = q.kind
    WHERE s.member_id <> %(member)s AND s.last_seen_at > %(now)s - '90 days'::interval
    GROUP BY q.n
"""  # noqa: S608 - constant interval literals

LOOKUP_SQL = """
    INSERT INTO registry_lookup (id, member_id, api_key_id, purpose, consent_reference,
                                 identifier_count, match_count, created_at)
    VALUES (%(lookup)s, %(member)s, NULL, 'credit_review', 'bench-sql', %(count)s,
            %(matched)s, %(now)s)
"""

LOG_SQL = """
    INSERT INTO registry_lookuplogentry (lookup_id, member_id, kind, digest, pepper_version,
                                         created_at)
    SELECT %(lookup)s, %(member)s, q.kind, q.digest, %(version)s, %(now)s
    FROM unnest(%(kind)s::text[], %(digest)s::bytea[]) AS q (kind, digest)
"""

SIGHTING_SQL = """
    INSERT INTO registry_sighting (kind, digest, member_id, pepper_version, last_seen_at)
    SELECT q.kind, q.digest, %(member)s, %(version)s, %(now)s
    FROM unnest(%(kind)s::text[], %(digest)s::bytea[]) AS q (kind, digest)
    ORDER BY q.digest, q.kind
    ON CONFLICT (digest, kind, member_id) DO UPDATE
    SET last_seen_at = GREATEST(registry_sighting.last_seen_at, EXCLUDED.last_seen_at)
"""

AUDIT_SQL = """
    INSERT INTO registry_auditevent (created_at, actor_type, member_id, api_key_prefix, officer,
                                     action, object_type, object_id, details)
    VALUES (%(now)s, 'member', %(member)s, '', '', 'lookup.performed', 'lookup', %(lookup)s,
            %(details)s)
"""


class SqlLookups:
    """Bare-SQL lookups of pre-digested batches on one connection."""

    def __init__(self, url: str, member_id: int, version: int) -> None:
        # Prepared (psycopg does that after five runs) and with generic plans, as the
        # application's own statements run (consortium/settings.py): PostgreSQL would
        # otherwise re-plan these array statements on every call.
        self.conn = psycopg.connect(
            url, autocommit=False, options="-c plan_cache_mode=force_generic_plan"
        )
        self.member_id = member_id
        self.version = version

    def close(self) -> None:
        self.conn.close()

    def lookup(self, batch: list[tuple[str, bytes]]) -> int:
        """One lookup of distinct (kind, digest) pairs; returns the number matched."""
        now = datetime.now(UTC)
        lookup_id = uuid.uuid4()
        params = {
            "n": list(range(len(batch))),
            "kind": [k for k, _d in batch],
            "digest": [d for _k, d in batch],
            "version": self.version,
            "now": now,
            "today": timezone.localdate(now),
            "member": self.member_id,
            "lookup": lookup_id,
            "count": len(batch),
        }
        with self.conn.cursor() as cur:
            matches = cur.execute(MATCH_SQL, params).fetchall()
            cur.execute(VELOCITY_SQL, params).fetchall()
            matched = len({row[0] for row in matches})
            cur.execute(LOOKUP_SQL, params | {"matched": matched})
            cur.execute(LOG_SQL, params)
            cur.execute(SIGHTING_SQL, params)
            details = {"purpose": "credit_review", "identifiers": len(batch), "matched": matched}
            cur.execute(
                AUDIT_SQL, params | {"lookup": str(lookup_id), "details": json.dumps(details)}
            )
        self.conn.commit()
        return matched

    def warm(self, batches: list[list[tuple[str, bytes]]]) -> None:
        """Read every batch once (matches and velocity only), so that the first measured
        round does not pay for pages the later rounds find cached."""
        for batch in batches:
            params = {
                "n": list(range(len(batch))),
                "kind": [k for k, _d in batch],
                "digest": [d for _k, d in batch],
                "version": self.version,
                "now": datetime.now(UTC),
                "today": timezone.localdate(),
                "member": self.member_id,
            }
            self.conn.execute(MATCH_SQL, params).fetchall()
            self.conn.execute(VELOCITY_SQL, params).fetchall()
        self.conn.rollback()

    def run(self, batches: list[list[tuple[str, bytes]]]) -> dict:
        started = time.perf_counter()
        matched = sum(self.lookup(batch) for batch in batches)
        elapsed = time.perf_counter() - started
        items = sum(len(batch) for batch in batches)
        return {"items": items, "seconds": elapsed, "rate": items / elapsed, "matched": matched}


def sql_concurrent(
    url: str,
    member_id: int,
    version: int,
    lookups: list[list[tuple[str, bytes]]],
    *,
    clients: int,
    seconds: float,
) -> dict:
    """`clients` connections doing bare-SQL lookups in a closed loop for `seconds`: what the
    database alone answers at that concurrency (requests/s, p50, p99)."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(first: int) -> None:
        sql = SqlLookups(url, member_id, version)
        local, index = [], first
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            sql.lookup(lookups[index % len(lookups)])
            local.append(time.perf_counter() - began)
            index += clients
        sql.close()
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    latencies.sort()
    count = len(latencies)
    return {
        "requests_per_s": count / seconds,
        "p50_ms": latencies[count // 2] * 1000,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000,
    }


def bare_evaluate_rate(chunks: list[list[bytes]], sk: bytes, pk: bytes) -> dict:
    """What an evaluate call does, without HTTP: evaluate each chunk and prove it."""
    from registry_client import oprf

    started = time.perf_counter()
    count = 0
    for chunk in chunks:
        evaluated = oprf.blind_evaluate_many(sk, chunk)
        oprf.generate_proof(sk, pk, chunk, evaluated)
        count += len(chunk)
    elapsed = time.perf_counter() - started
    return {"items": count, "seconds": elapsed, "rate": count / elapsed}

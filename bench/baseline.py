"""What the database and the crypto can do on their own, to measure the API against.

`SqlLookups` performs the same lookup as POST /api/v1/lookups — matchable cases, velocity in
five windows, the Lookup row, the log rows, the sighting upserts, one audit event — as six
plain statements in one transaction over one psycopg connection, with the digests computed
beforehand (so the baseline is the database's work alone). It is written independently of
registry/selectors/lookups.py on purpose: a slow query in the application shows up as a low
API/SQL ratio instead of slowing both sides.

`sql_ingest` inserts the rows a batch case submission writes (the member's live references
checked, the cases, their identifiers, one audit event per case) from as many connections
as the API has clients, digests and fingerprints computed beforehand.

`bare_evaluate_rate` is RFC 9497 BlindEvaluate in a loop, in this process.
"""

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

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


TAKEN_SQL = """
    SELECT reference FROM registry_case
    WHERE member_id = %(member)s AND reference = ANY(%(reference)s::text[])
      AND status IN ('active', 'disputed')
"""

CASES_SQL = """
    INSERT INTO registry_case (id, member_id, reference, category_id, status, confirmed_at,
                               expires_at, created_at, status_changed_at, subject_statement)
    SELECT q.id, %(member)s, q.reference, q.category, 'active', q.confirmed, q.expires,
           %(now)s, %(now)s, ''
    FROM unnest(%(id)s::uuid[], %(reference)s::text[], %(category)s::text[],
                %(confirmed)s::date[], %(expires)s::date[])
         AS q (id, reference, category, confirmed, expires)
    ON CONFLICT DO NOTHING RETURNING id
"""

IDENTIFIERS_SQL = """
    INSERT INTO registry_caseidentifier (case_id, kind, digest, pepper_version, fingerprint)
    SELECT * FROM unnest(%(case)s::uuid[], %(kind)s::text[], %(digest)s::bytea[],
                         %(version)s::smallint[], %(fingerprint)s::text[])
"""

CASE_EVENTS_SQL = """
    INSERT INTO registry_auditevent (created_at, actor_type, member_id, api_key_prefix, officer,
                                     action, object_type, object_id, details)
    SELECT %(now)s, 'member', %(member)s, '', '', 'case.submitted', 'case', q.id, q.details
    FROM unnest(%(id)s::text[], %(details)s::jsonb[]) AS q (id, details)
"""


@dataclass
class SqlCase:
    """A case as the baseline inserts it: what the API derives from the submitted JSON."""

    id: uuid.UUID
    reference: str
    category: str
    confirmed: date
    expires: date
    identifiers: list  # (kind, digest, pepper version, fingerprint)


def sql_ingest(url: str, member_id: int, calls: list[list[SqlCase]], *, clients: int) -> dict:
    """Each call's cases inserted in one transaction (four statements), `clients`
    connections sharing the calls; identifiers per second over the wall time."""
    queue = list(reversed(calls))
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    failures: list[str] = []

    def submit(conn, cases: list[SqlCase]) -> None:
        now = datetime.now(UTC)
        params = {
            "member": member_id,
            "now": now,
            "id": [c.id for c in cases],
            "reference": [c.reference for c in cases],
            "category": [c.category for c in cases],
            "confirmed": [c.confirmed for c in cases],
            "expires": [c.expires for c in cases],
        }
        with conn.transaction():
            taken = conn.execute(TAKEN_SQL, params).fetchall()
            inserted = conn.execute(CASES_SQL, params).fetchall()
            rows = [(c.id, *row) for c in cases for row in c.identifiers]
            conn.execute(
                IDENTIFIERS_SQL,
                {
                    "case": [r[0] for r in rows],
                    "kind": [r[1] for r in rows],
                    "digest": [r[2] for r in rows],
                    "version": [r[3] for r in rows],
                    "fingerprint": [r[4] for r in rows],
                },
            )
            details = [
                json.dumps(
                    {
                        "reference_length": len(c.reference),
                        "category": c.category,
                        "confirmed_at": c.confirmed.isoformat(),
                        "expires_at": c.expires.isoformat(),
                        "identifiers": len(c.identifiers),
                        "identifier_kinds": sorted({row[0] for row in c.identifiers}),
                    }
                )
                for c in cases
            ]
            conn.execute(
                CASE_EVENTS_SQL,
                params | {"id": [str(c.id) for c in cases], "details": details},
            )
        if taken or len(inserted) != len(cases):
            failures.append(f"{len(taken)} references taken, {len(inserted)} of {len(cases)}")

    def client() -> None:
        with psycopg.connect(
            url, autocommit=True, options="-c plan_cache_mode=force_generic_plan"
        ) as conn:
            start.wait()
            while True:
                with lock:
                    cases = queue.pop() if queue else None
                if cases is None:
                    return
                submit(conn, cases)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"bare-SQL ingest: {failures[0]}")
    items = sum(len(c.identifiers) for call in calls for c in call)
    return {"items": items, "seconds": elapsed, "rate": items / elapsed}


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

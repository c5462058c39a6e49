"""The match read of a lookup: ONE set-based relation over all identifiers of the call, a
part of the lookup's single statement (registry/services/lookups.py).

It takes `Probes`: for each distinct identifier `n` of the call, its kind and its digest at
every configured pepper version; the statement keeps those a stored row may still have (see
PROBE_CTE). The probes travel as four parallel arrays and are `unnest`ed into a relation the
planner joins against the (digest, kind) indexes, for 1 or 1000 identifiers alike.

The SQL is hand-written because it is the hot path (the ORM cannot join against an unnest
without a raw relation, and an `IN` list of 2000 digests costs more to build than to run).
It keeps the semantics of `matchable_cases_q()` exactly, at the caller's clock.

The arrays are sent as binary parameters (`%(digest)b`, see registry/sql.py): Django's
default client-side binding would quote 2000 digests into the SQL text, which measured longer
than running the query.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

from registry.models import Case, CaseIdentifier, Dispute, Member, RegistryState

ROTATION_STATE_KEY = "pepper_rotation"  # RegistryState of registry/services/jobs/rotation.py

VELOCITY_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("90d", timedelta(days=90)),
)


@dataclass
class Probes:
    """Parallel arrays, one row per (identifier n, pepper version)."""

    n: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    digest: list[bytes] = field(default_factory=list)

    def add(self, n: int, kind: str, version: int, digest: bytes) -> None:
        self.n.append(n)
        self.kind.append(kind)
        self.version.append(version)
        self.digest.append(digest)

    def params(self) -> dict:
        return {"n": self.n, "kind": self.kind, "version": self.version, "digest": self.digest}


@dataclass(frozen=True)
class MatchRow:
    n: int
    case_id: object
    category: str
    confirmed_at: date
    status: str
    member_id: int
    member_code: str
    has_subject_statement: bool


# The probes come at EVERY pepper version (1..current); only those a stored row may still
# have are kept: all of them until the rotation to the current version has completed (rows of
# an unfinished earlier rotation may sit at any older layer), then the current one and the one
# before it (a process still on the old configuration may write a row at that layer while
# the new one rolls out). One primary-key read of the rotation state, inside the statement.
PROBE_CTE = f"""
    WITH probe (n, kind, pepper_version, digest) AS (
        SELECT * FROM unnest(%(n)b::int[], %(kind)b::text[], %(version)b::smallint[],
                             %(digest)b::bytea[]) AS p (n, kind, pepper_version, digest)
        WHERE p.pepper_version >= COALESCE((
            SELECT CASE WHEN (s.value ->> 'completed_version')::int >= %(current_version)s
                        THEN %(current_version)s - 1 ELSE 1 END
            FROM {RegistryState._meta.db_table} s WHERE s.key = '{ROTATION_STATE_KEY}'
        ), 1)
    )
"""  # noqa: S608 - the table name comes from the model, values are parameters

# Each probe looks its rows up through the (digest, kind) index in a LATERAL subquery.
# `OFFSET 0` keeps the planner from flattening it into a hash join: on mid-sized tables
# (say 50,000 identifiers) it would otherwise scan the whole table for 1000 probes, which
# measured 20 times slower than 1000 index probes (cached pages make its cost model wrong).
# On large tables it would choose the index anyway.

# Same rule as selectors.cases.matchable_cases_q(): active, or disputed without an undecided
# dispute past its deadline (whatever the deadline job has recorded), and not past expires_at
# (whatever the expiry job has done). `now` and `today` come from the application's clock.
# A CTE of the lookup's one statement (registry/services/lookups.py), after PROBE_CTE: one
# row per (identifier n, matchable case), in MatchRow's column order.
MATCHED_CTE = f"""
    matched (n, case_id, category_id, confirmed_at, status, member_id, member_code,
             has_statement) AS (
        SELECT DISTINCT probe.n, hit.id, hit.category_id, hit.confirmed_at, hit.status,
               hit.member_id, m.code, hit.has_statement
        FROM probe
        CROSS JOIN LATERAL (
            SELECT c.id, c.category_id, c.confirmed_at, c.status, c.member_id,
                   c.subject_statement <> '' AS has_statement
            FROM {CaseIdentifier._meta.db_table} ci
            JOIN {Case._meta.db_table} c ON c.id = ci.case_id
            WHERE ci.digest = probe.digest AND ci.kind = probe.kind
              AND ci.pepper_version = probe.pepper_version
              AND c.expires_at > %(today)s
              AND (c.status = 'active'
                   OR (c.status = 'disputed' AND NOT EXISTS (
                         SELECT 1 FROM {Dispute._meta.db_table} d
                         WHERE d.case_id = c.id
                           AND d.status IN ('open', 'responded', 'overdue')
                           AND (d.status = 'overdue' OR d.due_at <= %(now)s))))
            OFFSET 0
        ) hit
        JOIN {Member._meta.db_table} m ON m.id = hit.member_id
    )
"""  # noqa: S608 - table names come from the models, values are parameters

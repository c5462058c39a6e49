"""The two reads of a lookup, each ONE set-based query over all identifiers of the call.

Both take `Probes`: for each distinct identifier `n` of the call, its kind and its digest at
every pepper version a stored row may have (current, and the previous one while a rotation is
under way). The probes travel as four parallel arrays and are `unnest`ed into a relation the
planner joins against the (digest, kind) indexes: one round trip for 1 or 1000 identifiers.

The SQL is hand-written because it is the hot path (the ORM cannot join against an unnest
without a raw relation, and an `IN` list of 2000 digests costs more to build than to run).
It keeps the semantics of `matchable_cases_q()` exactly, at the caller's clock.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection

from registry.actors import Actor
from registry.models import Case, CaseIdentifier, Dispute, Member, Sighting

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


_PROBE_CTE = """
    WITH probe (n, kind, pepper_version, digest) AS (
        SELECT * FROM unnest(%(n)s::int[], %(kind)s::text[], %(version)s::smallint[],
                             %(digest)s::bytea[])
    )
"""

# Same rule as selectors.cases.matchable_cases_q(): active, or disputed without an undecided
# dispute past its deadline (whatever the deadline job has recorded), and not past expires_at
# (whatever the expiry job has done). `now` and `today` come from the application's clock.
_MATCH_SQL = (
    _PROBE_CTE
    + f"""
    SELECT DISTINCT probe.n, c.id, c.category_id, c.confirmed_at, c.status, c.member_id,
           m.code, c.subject_statement <> ''
    FROM probe
    JOIN {CaseIdentifier._meta.db_table} ci
      ON ci.digest = probe.digest AND ci.kind = probe.kind
     AND ci.pepper_version = probe.pepper_version
    JOIN {Case._meta.db_table} c ON c.id = ci.case_id
    JOIN {Member._meta.db_table} m ON m.id = c.member_id
    WHERE c.expires_at > %(today)s
      AND (c.status = 'active'
           OR (c.status = 'disputed' AND NOT EXISTS (
                 SELECT 1 FROM {Dispute._meta.db_table} d
                 WHERE d.case_id = c.id
                   AND d.status IN ('open', 'responded', 'overdue')
                   AND (d.status = 'overdue' OR d.due_at <= %(now)s))))
    ORDER BY probe.n, c.confirmed_at DESC, c.id
"""  # noqa: S608 - table names come from the models, values are parameters
)

_VELOCITY_COLUMNS = ",\n".join(
    f"count(DISTINCT s.member_id) FILTER (WHERE s.last_seen_at > %(since_{name})s)"
    for name, _window in VELOCITY_WINDOWS
)
# One row per (identifier, member) in Sighting: counting members whose last sighting is in
# the window counts each other member once, however often it looked. DISTINCT matters only
# during a pepper rotation, when a member can have a row at each of two versions.
_VELOCITY_SQL = (
    _PROBE_CTE
    + f"""
    SELECT probe.n, {_VELOCITY_COLUMNS}
    FROM probe
    JOIN {Sighting._meta.db_table} s
      ON s.digest = probe.digest AND s.kind = probe.kind
     AND s.pepper_version = probe.pepper_version
    WHERE s.member_id <> %(member)s AND s.last_seen_at > %(since_longest)s
    GROUP BY probe.n
"""  # noqa: S608
)


def lookup_matches(*, probes: Probes, now: datetime, today: date) -> list[MatchRow]:
    """Every matchable case of every probed identifier, ordered by identifier, newest first.
    Cases of all members: a lookup is the one read that crosses members, by design."""
    with connection.cursor() as cursor:
        cursor.execute(_MATCH_SQL, {**probes.params(), "now": now, "today": today})
        return [MatchRow(*row) for row in cursor.fetchall()]


def lookup_velocity(*, actor: Actor, probes: Probes, now: datetime) -> dict[int, dict[str, int]]:
    """For each identifier n with any sighting by another member in the longest window:
    {"1h": members, "24h": ..., "90d": ...}. Identifiers absent from the answer have zeros."""
    params = {**probes.params(), "member": actor.member_id}
    for name, window in VELOCITY_WINDOWS:
        params[f"since_{name}"] = now - window
    params["since_longest"] = now - VELOCITY_WINDOWS[-1][1]
    with connection.cursor() as cursor:
        cursor.execute(_VELOCITY_SQL, params)
        return {
            row[0]: dict(zip((name for name, _w in VELOCITY_WINDOWS), row[1:], strict=True))
            for row in cursor.fetchall()
        }

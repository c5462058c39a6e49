"""Rings: cases of different members linked by a shared identifier (issue 19).

The graph: nodes are LIVE cases (active or disputed); an edge joins two cases of DIFFERENT
members holding the same identifier (same kind, digest and pepper version). A ring is a
connected component of at least two cases (so of at least two members). Closed cases
(withdrawn, removed, expired) are in no ring: leaving the registry deletes their digests
(case_lifecycle.py), and a ring must not outlive them. A live case whose dispute is overdue
is hidden from members' lookups but stays in its ring: only officers see rings, and they
see the case itself too.

Two ways keep the Ring/RingCase tables current, both under one transaction-level advisory
lock (RING_LOCK), so two updates never interleave:

- `ring_update_for_cases(case_ids=...)`: after a submission or a closure (the outbox task
  `registry.rings.update_for_cases`, queued by case_lifecycle.case_rings_enqueue). It reads
  only the component(s) of those cases: their current rings' cases plus a breadth-first walk
  over the edges, each step one indexed query (identifier_once by case, then
  case_identifier_digest by (digest, kind)). Idempotent: a second run finds nothing to change.
- `rings_rebuild()`: the daily job `ring_rebuild`, from every shared digest at once (one
  GROUP BY over case_identifier_digest, then union-find in Python). It repairs whatever an
  update missed (a lost task, a pepper rotation in progress: digests of one identifier at two
  pepper versions do not match until the rotation ends) and refreshes the growth figures,
  which are counted as of the day they are computed.

A component that shares most cases with an old ring inherits its id and `first_seen_at` (a
merge keeps the larger ring's; a split leaves it with the larger part), so a ring an officer
looked at yesterday is still found under its number today.

Ring data is derived from the cases and their digests alone, never from a raw identifier or
token; it is not on the audit trail (JobRun records the jobs), but opening a ring is.
"""

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from registry.models import LIVE_CASE_STATUSES, Case, CaseIdentifier, Ring, RingCase

# pg_advisory_xact_lock key of every ring write ("RINGS" in ASCII).
RING_LOCK = 0x52494E4753
# Cases asked about per neighbour query (an array parameter; each is an indexed probe).
NEIGHBOUR_CHUNK = 1000

_CI = CaseIdentifier._meta.db_table
_CASE = Case._meta.db_table
_RING = Ring._meta.db_table
_RING_CASE = RingCase._meta.db_table
_LIVE = ", ".join(f"'{status}'" for status in LIVE_CASE_STATUSES)

# The neighbours of some cases: the other member's cases sharing one of their identifiers.
# `a` is read by identifier_once (case_id, kind, digest), `b` by case_identifier_digest
# (digest, kind); the cases by their primary key.
_NEIGHBOURS_SQL = f"""
    SELECT DISTINCT a.case_id, b.case_id
    FROM {_CI} a
    JOIN {_CI} b
      ON b.digest = a.digest AND b.kind = a.kind AND b.pepper_version = a.pepper_version
     AND b.case_id <> a.case_id
    JOIN {_CASE} ca ON ca.id = a.case_id
    JOIN {_CASE} cb ON cb.id = b.case_id
    WHERE a.case_id = ANY(%s::uuid[])
      AND ca.member_id <> cb.member_id
      AND ca.status IN ({_LIVE}) AND cb.status IN ({_LIVE})
"""  # noqa: S608 - table names and statuses are the code's own; values are parameters

# Every shared identifier of live cases of two members or more, as the cases holding it. The
# inner GROUP BY reads only the index case_identifier_digest (digest, kind), in its order.
_SHARED_GROUPS_SQL = f"""
    SELECT array_agg(ci.case_id)
    FROM {_CI} ci
    JOIN {_CASE} c ON c.id = ci.case_id
    WHERE (ci.digest, ci.kind) IN (
        SELECT digest, kind FROM {_CI} GROUP BY digest, kind HAVING count(*) > 1
    )
      AND c.status IN ({_LIVE})
    GROUP BY ci.digest, ci.kind, ci.pepper_version
    HAVING count(DISTINCT c.member_id) > 1
"""  # noqa: S608

# Size, members, growth and newest case of some rings (all when %(all)s), from their cases.
_RING_STATS_SQL = f"""
    UPDATE {_RING} r
    SET size = s.size, member_count = s.members, grown_7d = s.week, grown_30d = s.month,
        last_grown_at = s.newest, computed_at = %(now)s
    FROM (
        SELECT rc.ring_id, count(*) AS size, count(DISTINCT c.member_id) AS members,
               count(*) FILTER (WHERE c.created_at > %(week)s) AS week,
               count(*) FILTER (WHERE c.created_at > %(month)s) AS month,
               max(c.created_at) AS newest
        FROM {_RING_CASE} rc JOIN {_CASE} c ON c.id = rc.case_id
        WHERE %(all)s OR rc.ring_id = ANY(%(ids)s::bigint[])
        GROUP BY rc.ring_id
    ) s
    WHERE r.id = s.ring_id
"""  # noqa: S608

# How many identifiers of each ring are held by cases of two of its members or more.
_RING_SHARED_SQL = f"""
    UPDATE {_RING} r SET shared_identifiers = s.shared
    FROM (
        SELECT ring_id, count(*) AS shared FROM (
            SELECT rc.ring_id
            FROM {_RING_CASE} rc
            JOIN {_CI} ci ON ci.case_id = rc.case_id
            JOIN {_CASE} c ON c.id = rc.case_id
            WHERE %(all)s OR rc.ring_id = ANY(%(ids)s::bigint[])
            GROUP BY rc.ring_id, ci.kind, ci.digest, ci.pepper_version
            HAVING count(DISTINCT c.member_id) > 1
        ) g GROUP BY ring_id
    ) s
    WHERE r.id = s.ring_id
"""  # noqa: S608


class _UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def components(self) -> list[set]:
        groups = defaultdict(set)
        for node in list(self.parent):
            groups[self.find(node)].add(node)
        return [group for group in groups.values() if len(group) >= 2]


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RING_LOCK])


def case_neighbours(case_ids: Iterable) -> list[tuple]:
    """(case, neighbour) pairs: live cases of another member sharing an identifier."""
    ids = list(case_ids)
    pairs: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), NEIGHBOUR_CHUNK):
            cursor.execute(_NEIGHBOURS_SQL, [ids[start : start + NEIGHBOUR_CHUNK]])
            pairs.extend(cursor.fetchall())
    return pairs


def _walk(start: set, seen: set, union: _UnionFind) -> None:
    """Add to `seen` every case reachable from `start` over the edges; the edges go into
    `union`."""
    seen |= start
    frontier = set(start)
    while frontier:
        found = set()
        for a, b in case_neighbours(frontier):
            union.union(a, b)
            if b not in seen:
                seen.add(b)
                found.add(b)
        frontier = found


@transaction.atomic
def ring_update_for_cases(*, case_ids: Iterable, now: datetime | None = None) -> dict:
    """Bring the rings of these cases (just submitted, or just closed) up to date, and only
    theirs. Idempotent. Returns counts of what changed."""
    now = now or timezone.now()
    _lock()
    union = _UnionFind()
    scope_rings: set[int] = set()
    checked: set = set()  # cases whose recorded ring is known
    reached: set = set()  # cases walked from
    pending = {_as_uuid(pk) for pk in case_ids}
    while pending:
        checked |= pending
        new_rings = (
            set(RingCase.objects.filter(case_id__in=pending).values_list("ring_id", flat=True))
            - scope_rings
        )
        scope_rings |= new_rings
        ring_cases = set(
            RingCase.objects.filter(ring_id__in=new_rings).values_list("case_id", flat=True)
        )
        checked |= ring_cases
        _walk((pending | ring_cases) - reached, reached, union)
        # A case reached that was recorded in another ring (so far only possible when the
        # table was stale): that ring is taken in too, so none of its cases is left behind.
        pending = reached - checked
    return _apply(components=union.components(), scope_rings=scope_rings, now=now)


@transaction.atomic
def rings_rebuild(*, now: datetime | None = None) -> dict:
    """Recompute every ring from the shared digests (the daily job)."""
    now = now or timezone.now()
    _lock()
    union = _UnionFind()
    groups = 0
    with connection.chunked_cursor() as cursor:
        cursor.execute(_SHARED_GROUPS_SQL)
        while rows := cursor.fetchmany(10_000):
            for (cases,) in rows:
                groups += 1
                first = cases[0]
                for other in cases[1:]:
                    union.union(first, other)
    scope = set(Ring.objects.values_list("id", flat=True))
    summary = _apply(components=union.components(), scope_rings=scope, now=now, everything=True)
    summary["shared_identifiers"] = groups
    return summary


def _apply(
    *, components: list[set], scope_rings: set[int], now: datetime, everything: bool = False
) -> dict:
    """Make the rings in `scope_rings` (and new ones) be exactly `components`."""
    old = dict(
        RingCase.objects.filter(ring_id__in=scope_rings).values_list("case_id", "ring_id")
        if not everything
        else RingCase.objects.values_list("case_id", "ring_id")
    )
    in_components = {case for component in components for case in component}
    # Cases of the components still recorded in a ring outside the scope (possible only if
    # the table was stale): their rings are rewritten too.
    outside = (
        {}
        if everything
        else dict(
            RingCase.objects.filter(case_id__in=in_components - set(old)).values_list(
                "case_id", "ring_id"
            )
        )
    )
    old.update(outside)
    scope_rings = scope_rings | set(outside.values())
    # The component sharing most cases with an old ring inherits it (largest overlaps first).
    overlaps = []
    for index, component in enumerate(components):
        counts = Counter(old[case] for case in component if case in old)
        overlaps.extend((-count, ring, index) for ring, count in counts.items())
    overlaps.sort()
    ring_of: dict[int, int] = {}
    taken: set[int] = set()
    for _count, ring, index in overlaps:
        if index in ring_of or ring in taken:
            continue
        ring_of[index] = ring
        taken.add(ring)
    unassigned = [index for index in range(len(components)) if index not in ring_of]
    created = Ring.objects.bulk_create(
        [
            Ring(
                size=len(components[index]),
                member_count=0,
                first_seen_at=now,
                last_grown_at=now,
                computed_at=now,
            )
            for index in unassigned
        ]
    )
    for index, ring in zip(unassigned, created, strict=True):
        ring_of[index] = ring.pk

    wanted = {case: ring_of[index] for index, comp in enumerate(components) for case in comp}
    gone = [case for case in old if case not in wanted]
    moved = [
        RingCase(case_id=case, ring_id=ring)
        for case, ring in wanted.items()
        if old.get(case) != ring
    ]
    for chunk in _chunks(gone):
        RingCase.objects.filter(case_id__in=chunk).delete()
    RingCase.objects.bulk_create(
        moved,
        update_conflicts=True,
        unique_fields=["case"],
        update_fields=["ring"],
        batch_size=5000,
    )
    dropped = scope_rings - taken
    for chunk in _chunks(sorted(dropped)):
        Ring.objects.filter(id__in=chunk).delete()
    kept = set(ring_of.values())
    _refresh_stats(None if everything else kept, now)
    changed = {wanted[row.case_id] for row in moved} | {
        old[case] for case in gone if old[case] in kept
    }
    return {
        "rings": len(kept),
        "rings_created": len(created),
        "rings_dropped": len(dropped),
        "rings_changed": len(changed | {ring.pk for ring in created}),
        "cases_joined": len(moved),
        "cases_left": len(gone),
    }


def _refresh_stats(ring_ids: set[int] | None, now: datetime) -> None:
    params = {
        "now": now,
        "week": now - timedelta(days=7),
        "month": now - timedelta(days=30),
        "all": ring_ids is None,
        "ids": sorted(ring_ids or ()),
    }
    if ring_ids is not None and not ring_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(_RING_STATS_SQL, params)
        cursor.execute(_RING_SHARED_SQL, params)


def _chunks(items: list, size: int = 5000):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_uuid(value):
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

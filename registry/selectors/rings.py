"""Reads of rings for the officers' admin (services/rings.py keeps them): a ring's cases and
the links between them, each link by identifier kind and fingerprint (never a digest)."""

from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import connection

from registry.models import Case, CaseIdentifier, Ring, RingCase

# A ring page lists at most this many cases and links (the graph draws fewer: admin/rings.py).
MAX_CASES = 500
MAX_LINKS = 2000

_CI = CaseIdentifier._meta.db_table
_CASE = Case._meta.db_table
_RING_CASE = RingCase._meta.db_table

# Pairs of the ring's cases of different members sharing an identifier, with its kind and
# fingerprint (the fingerprint of one identifier is the same in every case that holds it).
# No ORDER BY, so that the LIMIT stops a huge ring's pairs early; sorted in Python.
_LINKS_SQL = f"""
    SELECT a.case_id, b.case_id, a.kind, a.fingerprint
    FROM {_RING_CASE} ra
    JOIN {_CI} a ON a.case_id = ra.case_id
    JOIN {_CI} b
      ON b.digest = a.digest AND b.kind = a.kind AND b.pepper_version = a.pepper_version
     AND b.case_id > a.case_id
    JOIN {_RING_CASE} rb ON rb.case_id = b.case_id AND rb.ring_id = ra.ring_id
    JOIN {_CASE} ca ON ca.id = a.case_id
    JOIN {_CASE} cb ON cb.id = b.case_id
    WHERE ra.ring_id = %s AND ca.member_id <> cb.member_id
    LIMIT %s
"""  # noqa: S608 - the table names are the code's own; values are parameters


@dataclass
class RingNode:
    case_id: object
    member_code: str
    member_id: int
    category: str
    category_name: str
    status: str
    confirmed_at: date
    created_at: datetime


@dataclass
class RingLink:
    a: object
    b: object
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (kind, fingerprint)


@dataclass
class RingGraph:
    ring: Ring
    nodes: list[RingNode]
    links: list[RingLink]
    truncated: bool


def ring_graph(*, ring: Ring) -> RingGraph:
    rows = (
        Case.objects.filter(ring_membership__ring=ring)
        .order_by("created_at", "id")
        .values_list(
            "id",
            "member__code",
            "member_id",
            "category_id",
            "category__name",
            "status",
            "confirmed_at",
            "created_at",
        )[: MAX_CASES + 1]
    )
    nodes = [RingNode(*row) for row in rows]
    truncated = len(nodes) > MAX_CASES
    nodes = nodes[:MAX_CASES]
    shown = {node.case_id for node in nodes}
    with connection.cursor() as cursor:
        cursor.execute(_LINKS_SQL, [ring.pk, MAX_LINKS * 4])
        pairs = sorted(cursor.fetchall(), key=lambda row: (str(row[0]), str(row[1]), row[2:]))
    links: dict[tuple, RingLink] = {}
    for a, b, kind, fingerprint in pairs:
        if a not in shown or b not in shown:
            continue
        link = links.setdefault((a, b), RingLink(a, b))
        link.identifiers.append((kind, fingerprint))
    truncated = truncated or len(pairs) >= MAX_LINKS * 4 or len(links) > MAX_LINKS
    return RingGraph(
        ring=ring, nodes=nodes, links=list(links.values())[:MAX_LINKS], truncated=truncated
    )


def rings_member_codes(*, ring_ids: list[int]) -> dict[int, list[str]]:
    """The codes of the members with cases in each ring (for a page of the ring list)."""
    codes: dict[int, set[str]] = {ring_id: set() for ring_id in ring_ids}
    for ring_id, code in (
        RingCase.objects.filter(ring_id__in=ring_ids)
        .values_list("ring_id", "case__member__code")
        .distinct()
    ):
        codes[ring_id].add(code)
    return {ring_id: sorted(found) for ring_id, found in codes.items()}


def ring_of_case(*, case_id) -> int | None:
    return RingCase.objects.filter(case_id=case_id).values_list("ring_id", flat=True).first()

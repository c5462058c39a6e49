"""Lookups: which identifiers match live cases, and how many other members just looked them up.

A lookup is a read of registry data AND a write (the lookup log, the velocity rollup, the
audit trail). For a call with k identifiers (1 <= k <= 1000) it is ONE statement, whatever k
and whatever the size of the tables:

    matched   unnest(probes) x LATERAL case_identifier(digest, kind) JOIN case
    looked    the Lookup row (who, when, purpose, counts)
    audited   ONE audit event per call (lookup id, counts)
    logged    k LookupLogEntry rows
    sighted   k Sighting upserts
    answer    the matches, and per identifier unnest(probes) x LATERAL sighting(digest,
              kind, member) counted per velocity window

A single statement is atomic on its own (it commits, or fails and writes nothing), so outside
a caller's transaction the service opens none: no BEGIN and COMMIT round trips. Round trips,
not the database's work, are most of a single-identifier lookup's time (each one wakes two
processes), and the Python cost of building ORM inserts was more than the rest of its work.

Velocity storage. "How many other members looked this identifier up in the last 1 h / 24 h /
7 d / 30 d / 90 d" must stay fast with a lookup log of tens of millions of rows, so velocity
never reads the log. It reads `Sighting`, a rollup with ONE row per (identifier digest, kind,
member) holding that member's last lookup time. A member looked an identifier up within a
window exactly when its last sighting is within it, so

    velocity(w) = count of OTHER members whose last_seen_at > now - w

answers all five windows from the same handful of rows (at most one per member of the
consortium), found through the unique (digest, kind, member) index. A member looking the same
identifier up twice updates its one row, so it counts once. The table grows with distinct
(identifier, member) pairs seen in 90 days, not with lookups; the jobs prune rows older than
REGISTRY_VELOCITY_RETENTION_DAYS.

Velocity is counted "before this lookup": the count and the upsert are one statement, and
all parts of a statement see the same snapshot, taken before any of them writes (PostgreSQL's
rule for data-modifying WITH queries), so a call never counts its own sightings (the caller
is excluded anyway). Upserts keep the later of the stored and the new time (GREATEST), and
write rows sorted by digest so two concurrent lookups sharing identifiers lock rows in the
same order and cannot deadlock each other. Two lookups of one identifier by two members at
the same instant may each miss the other (neither has committed): velocity is exact for
lookups that committed before the call began.

The log (`LookupLogEntry`, one row per distinct identifier of the call) exists for subject
access and the regulator: who looked up this identifier, when, why. It is insert-only.

Pepper rotation: stored rows may carry the digest at any pepper version a rotation has not
yet re-keyed, so every identifier is probed at each version that may still have rows
(`Probes`, PROBE_CTE); new rows are written at the current version only.
"""

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import tokens
from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import BatchTooLarge, FieldError, NotFound, ValidationFailed
from registry.ids import uuid7
from registry.models import (
    AuditEvent,
    IdentifierKind,
    Lookup,
    LookupLogEntry,
    Purpose,
    Sighting,
)
from registry.selectors.lookups import (
    MATCHED_CTE,
    PROBE_CTE,
    VELOCITY_WINDOWS,
    MatchRow,
    Probes,
)
from registry.services.audit import AUDIT_EVENT_COLUMNS, audit_actor_columns
from registry.sql import compact, execute_binary

MAX_IDENTIFIERS_PER_LOOKUP = 1000
KINDS = frozenset(IdentifierKind.values)
WINDOW_NAMES = tuple(name for name, _window in VELOCITY_WINDOWS)
ZERO_VELOCITY = dict.fromkeys(WINDOW_NAMES, 0)
NO_CASES: list = []  # shared by every unmatched result: results are only serialised

_SIGHTING_TABLE = Sighting._meta.db_table
_COUNTS = ", ".join(
    f"count(DISTINCT seen.member_id) FILTER (WHERE seen.last_seen_at > %(since_{name})s)"
    for name in WINDOW_NAMES
)
_NO_COUNTS = ", ".join("NULL" for _name in WINDOW_NAMES)
_MATCH_WIDTH = len(fields(MatchRow))  # an answer row: part, then a MatchRow, then the counts
_NO_MATCH = ", ".join("NULL" for _n in range(_MATCH_WIDTH - 1))
# The one statement of a lookup. Writes (the same columns as Lookup.objects.create and
# audit_record) are data-modifying CTEs; every part of a statement sees the snapshot taken
# before any of them writes, so velocity never counts this call's own sightings. The log's
# rows carry the Lookup's id and time without a database foreign key (the Lookup table is
# partitioned by month; models.LookupLogEntry says why); the Lookup and its log rows both get
# %(now)s, so they land in the same month's partitions (PostgreSQL routes each row when the
# statement runs: the prepared generic plan holds). Rows are written at the current pepper
# version only. `asked` holds the identifier number n of every identifier of the call, repeats
# included, to count matches as the response does. DISTINCT in the counts matters only during
# a pepper rotation, when one member can have a sighting at each of two versions.
# The answer: one 'm' row per (n, matching case), newest case first, then one 'v' row per
# identifier that other members looked up in the longest window. The audit event's values are
# in AUDIT_EVENT_COLUMNS' order.
_LOOKUP_SQL = compact(f"""{PROBE_CTE},
    {MATCHED_CTE},
    counted AS (
        SELECT count(*) AS matches FROM unnest(%(asked)b::int[]) AS asked (n)
        WHERE asked.n IN (SELECT n FROM matched)
    ),
    looked AS (
        INSERT INTO {Lookup._meta.db_table}
            (id, member_id, api_key_id, purpose, consent_reference, identifier_count,
             match_count, created_at)
        SELECT %(lookup)s, %(member)s, %(api_key)s, %(purpose)s, %(consent_reference)s,
               %(identifier_count)s, counted.matches, %(now)s
        FROM counted
    ),
    audited AS (
        INSERT INTO {AuditEvent._meta.db_table}
            ({", ".join(AUDIT_EVENT_COLUMNS)})
        SELECT %(audited_at)s, %(actor_type)s, %(member)s, %(api_key_prefix)s, %(officer)s,
               '{AuditAction.LOOKUP_PERFORMED.value}', 'lookup', %(lookup_text)s,
               %(details)s::jsonb || jsonb_build_object('matched', counted.matches)
        FROM counted
    ),
    logged AS (
        INSERT INTO {LookupLogEntry._meta.db_table}
            (lookup_id, member_id, kind, digest, pepper_version, created_at)
        SELECT %(lookup)s, %(member)s, probe.kind, probe.digest, probe.pepper_version, %(now)s
        FROM probe WHERE probe.pepper_version = %(current_version)s
    ),
    sighted AS (
        INSERT INTO {_SIGHTING_TABLE} (kind, digest, member_id, pepper_version, last_seen_at)
        SELECT probe.kind, probe.digest, %(member)s, probe.pepper_version, %(now)s
        FROM probe WHERE probe.pepper_version = %(current_version)s
        ORDER BY probe.digest, probe.kind
        ON CONFLICT (digest, kind, member_id) DO UPDATE
        SET last_seen_at = GREATEST({_SIGHTING_TABLE}.last_seen_at, EXCLUDED.last_seen_at)
    )
    SELECT * FROM (
        SELECT 'm' AS part, matched.*, {_NO_COUNTS} FROM matched
        UNION ALL
        SELECT 'v', probe.n, {_NO_MATCH}, {_COUNTS}
        FROM probe
        CROSS JOIN LATERAL (
            SELECT s.member_id, s.last_seen_at
            FROM {_SIGHTING_TABLE} s
            WHERE s.digest = probe.digest AND s.kind = probe.kind
              AND s.pepper_version = probe.pepper_version
              AND s.member_id <> %(member)s AND s.last_seen_at > %(since_longest)s
            OFFSET 0
        ) seen
        GROUP BY probe.n
    ) answer
    ORDER BY part, n, confirmed_at DESC, case_id
""")  # noqa: S608 - table names come from the models, values are parameters


@dataclass(frozen=True)
class LookupOutcome:
    lookup_id: str
    results: list[dict]  # ready-to-send result objects, one per identifier, in order


def lookup_perform(
    *,
    actor: Actor,
    purpose: str,
    identifiers: list[tuple[str, str]],
    consent_reference: str = "",
) -> LookupOutcome:
    """Look identifiers (kind, token) up for the calling member: one result per identifier,
    in order. The API screens the tokens first (raw identifiers, format); this checks the
    format again, cheaply, for any other caller. One statement: atomic without a transaction
    of its own (see the module's docstring)."""
    _check_request(actor, purpose, identifiers)
    now = timezone.now()
    distinct = list(dict.fromkeys(identifiers))  # (kind, token) -> n, in first-seen order
    position = {identifier: n for n, identifier in enumerate(distinct)}
    numbers = [position[identifier] for identifier in identifiers]
    lookup_id = uuid7()
    matches, velocity = _lookup_statement(
        actor,
        lookup_id,
        _probes(distinct),
        numbers,
        now,
        lookup_row={
            "purpose": purpose,
            "consent_reference": consent_reference,
            "identifier_count": len(identifiers),
        },
        audit_details={  # and "matched", counted by the statement
            "purpose": purpose,
            "identifiers": len(identifiers),
            "distinct_identifiers": len(distinct),
            "consent_reference": bool(consent_reference),
        },
    )
    cases = _cases_by_identifier(actor, matches)
    results = [
        {
            "kind": kind,
            "token": token,
            "matched": n in cases,
            "cases": cases.get(n, NO_CASES),
            "velocity": velocity.get(n, ZERO_VELOCITY),
        }
        for (kind, token), n in zip(identifiers, numbers, strict=True)
    ]
    return LookupOutcome(str(lookup_id), results)


def _check_request(actor: Actor, purpose: str, identifiers: list) -> None:
    if not actor.is_member:
        raise NotFound(_("Only members look identifiers up."))
    if len(identifiers) > MAX_IDENTIFIERS_PER_LOOKUP:
        raise BatchTooLarge(
            _("Send at most %(n)d identifiers per lookup.") % {"n": MAX_IDENTIFIERS_PER_LOOKUP},
            [FieldError("/identifiers", "batch_too_large", _("Too many identifiers."))],
        )
    if not identifiers:
        raise ValidationFailed(
            _("Send at least one identifier."),
            [FieldError("/identifiers", "required", _("At least one identifier."))],
        )
    bad = [
        FieldError(f"/identifiers/{index}", "invalid_identifier", _("Unknown kind or bad token."))
        for index, (kind, token) in enumerate(identifiers)
        if kind not in KINDS or not tokens.is_token(token)
    ]
    if bad:  # the API checks first; this guards other callers
        raise ValidationFailed(_("Some identifiers are invalid; see errors."), bad)
    if purpose not in Purpose.values:
        raise ValidationFailed(
            _("Unknown purpose."), [FieldError("/purpose", "invalid_choice", _("Unknown purpose."))]
        )


def _probes(distinct: list[tuple[str, str]]) -> Probes:
    """Digests of each identifier at every configured pepper version (computing them is one
    HMAC each); the statement keeps the versions stored rows may still have (PROBE_CTE)."""
    probes = Probes()
    for n, (kind, token) in enumerate(distinct):
        for version, digest in enumerate(tokens.digest_layers(token), start=1):
            probes.add(n, kind, version, digest)
    return probes


def _cases_by_identifier(actor: Actor, rows: list[MatchRow]) -> dict[int, list[dict]]:
    """Result case objects per identifier n (only matched identifiers appear)."""
    grouped: dict[int, list[MatchRow]] = {}
    for row in rows:
        grouped.setdefault(row.n, []).append(row)
    disclose = settings.REGISTRY_DISCLOSE_REPORTERS
    return {n: _case_objects(actor, matches, disclose) for n, matches in grouped.items()}


def _case_objects(actor: Actor, rows: list[MatchRow], disclose: bool) -> list[dict]:
    reporting_members = len({row.member_id for row in rows})
    cases = []
    for row in rows:
        case = {
            "case_id": str(row.case_id),
            "category": row.category,
            "confirmed_at": row.confirmed_at.isoformat(),
            "status": row.status,
            "reported_by_you": row.member_id == actor.member_id,
            "reporting_members": reporting_members,
            "has_subject_statement": row.has_subject_statement,
        }
        if disclose:
            case["reported_by"] = row.member_code
        cases.append(case)
    return cases


def _lookup_statement(
    actor: Actor,
    lookup_id: uuid.UUID,
    probes: Probes,
    asked: list[int],
    now: datetime,
    *,
    lookup_row: dict,
    audit_details: dict,
) -> tuple[list[MatchRow], dict[int, dict[str, int]]]:
    """Run the lookup's statement: the Lookup row (`lookup_row`: its other columns), its
    "lookup.performed" audit event, the log rows and sightings; returns the matches (by n,
    newest case first) and {n: {"1h": .., ..., "90d": ..}} for the identifiers seen by
    another member in the longest window, counted before this call."""
    params = {
        **probes.params(),
        **lookup_row,
        "asked": asked,
        "lookup": lookup_id,
        "lookup_text": str(lookup_id),
        "member": actor.member_id,
        "api_key": getattr(actor.api_key, "pk", None),
        "current_version": tokens.current_pepper_version(),
        "now": now,
        "today": timezone.localdate(now),
        "since_longest": now - VELOCITY_WINDOWS[-1][1],
        **_audit_params(actor, audit_details),
    }
    for name, window in VELOCITY_WINDOWS:
        params[f"since_{name}"] = now - window
    matches, velocity = [], {}
    for part, *row in execute_binary(_LOOKUP_SQL, params):
        if part == "m":
            matches.append(MatchRow(*row[:_MATCH_WIDTH]))
        else:
            velocity[row[0]] = dict(zip(WINDOW_NAMES, row[_MATCH_WIDTH:], strict=True))
    return matches, velocity


def _audit_params(actor: Actor, details: dict) -> dict:
    """The event's columns exactly as audit_record would fill them."""
    return {
        "audited_at": timezone.now(),
        **audit_actor_columns(actor),
        "details": json.dumps(details),
    }

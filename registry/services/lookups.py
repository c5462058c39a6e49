"""Lookups: which identifiers match live cases, and how many other members just looked them up.

A lookup is a read of registry data AND a write (the lookup log, the velocity rollup, the
audit trail), all in one transaction. For a call with k identifiers (1 <= k <= 1000) it costs
a constant number of statements, whatever k and whatever the size of the tables:

    1 query   matches     unnest(probes) JOIN case_identifier(digest, kind) JOIN case
    1 query   velocity    unnest(probes) JOIN sighting(digest, kind, member)
    1 insert  Lookup      who, when, purpose, counts
    1 insert  log         k LookupLogEntry rows from one INSERT ... SELECT unnest(...)
    1 upsert  sightings   INSERT ... ON CONFLICT DO UPDATE, rows in digest order
    1 insert  audit       ONE event per call (lookup id, counts)

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

Order matters: velocity is read BEFORE this call's sightings are upserted, so a call never
counts itself ("before this lookup", and the caller is excluded anyway). Upserts keep the
later of the stored and the new time (GREATEST), and write rows sorted by digest so two
concurrent lookups sharing identifiers lock rows in the same order and cannot deadlock.

The log (`LookupLogEntry`, one row per distinct identifier of the call) exists for subject
access and the regulator: who looked up this identifier, when, why. It is insert-only.

Pepper rotation: stored rows may carry the digest at the current or the previous pepper
version, so every identifier is probed at both (`Probes`); new rows are written at the current
version only.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import tokens
from registry.actors import Actor
from registry.errors import BatchTooLarge, FieldError, NotFound, ValidationFailed
from registry.models import Lookup, LookupLogEntry, Purpose, Sighting
from registry.selectors.lookups import (
    VELOCITY_WINDOWS,
    MatchRow,
    Probes,
    lookup_matches,
    lookup_velocity,
)
from registry.services.audit import audit_record

MAX_IDENTIFIERS_PER_LOOKUP = 1000
ZERO_VELOCITY = {name: 0 for name, _window in VELOCITY_WINDOWS}

_LOG_SQL = f"""
    INSERT INTO {LookupLogEntry._meta.db_table}
        (lookup_id, member_id, kind, digest, pepper_version, created_at)
    SELECT %(lookup)s, %(member)s, t.kind, t.digest, %(version)s, %(now)s
    FROM unnest(%(kind)s::text[], %(digest)s::bytea[]) AS t (kind, digest)
"""  # noqa: S608 - table names come from the models, values are parameters

_SIGHTING_TABLE = Sighting._meta.db_table
_SIGHTING_SQL = f"""
    INSERT INTO {_SIGHTING_TABLE} (kind, digest, member_id, pepper_version, last_seen_at)
    SELECT t.kind, t.digest, %(member)s, %(version)s, %(now)s
    FROM unnest(%(kind)s::text[], %(digest)s::bytea[]) AS t (kind, digest)
    ORDER BY t.digest, t.kind
    ON CONFLICT (digest, kind, member_id) DO UPDATE
    SET last_seen_at = GREATEST({_SIGHTING_TABLE}.last_seen_at, EXCLUDED.last_seen_at)
"""  # noqa: S608


@dataclass(frozen=True)
class LookupOutcome:
    lookup_id: str
    results: list[dict]  # ready-to-send result objects, one per identifier, in order


@transaction.atomic
def lookup_perform(
    *,
    actor: Actor,
    purpose: str,
    identifiers: list[tuple[str, str]],
    consent_reference: str = "",
) -> LookupOutcome:
    """Look identifiers (kind, token) up for the calling member. The tokens are expected to
    be checked for format by the caller (the API's IdentifierListField)."""
    _check_request(actor, purpose, identifiers)
    now = timezone.now()
    distinct = list(dict.fromkeys(identifiers))  # (kind, token) -> n, in first-seen order
    probes, current = _probes(distinct)
    matches = _group_matches(lookup_matches(probes=probes, now=now,
                                            today=timezone.localdate(now)))
    velocity = lookup_velocity(actor=actor, probes=probes, now=now)

    per_identifier = [_result_body(n, matches.get(n, []), velocity, actor)
                      for n in range(len(distinct))]
    position = {identifier: n for n, identifier in enumerate(distinct)}
    results = [
        {"kind": kind, "token": token, **per_identifier[position[(kind, token)]]}
        for kind, token in identifiers
    ]
    match_count = sum(1 for result in results if result["matched"])
    lookup = Lookup.objects.create(
        member_id=actor.member_id, api_key=actor.api_key, purpose=purpose,
        consent_reference=consent_reference, identifier_count=len(identifiers),
        match_count=match_count, created_at=now,
    )
    _record_sightings(actor, lookup, distinct, current, now)
    audit_record(
        actor=actor, action="lookup.performed", object_type="lookup", object_id=lookup.pk,
        details={"purpose": purpose, "identifiers": len(identifiers),
                 "distinct_identifiers": len(distinct), "matched": match_count,
                 "consent_reference": bool(consent_reference)},
    )
    return LookupOutcome(str(lookup.pk), results)


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
    if purpose not in Purpose.values:
        raise ValidationFailed(_("Unknown purpose."),
                               [FieldError("/purpose", "invalid_choice", _("Unknown purpose."))])


def _probes(distinct: list[tuple[str, str]]) -> tuple[Probes, list[bytes]]:
    """Digests of each identifier at the current and (during a rotation) previous pepper
    version; also returns the current digests, which are what gets written."""
    version = tokens.current_pepper_version()
    probes, current = Probes(), []
    for n, (kind, token) in enumerate(distinct):
        layers = tokens.digest_layers(token)
        probes.add(n, kind, version, layers[-1])
        if version > 1:
            probes.add(n, kind, version - 1, layers[-2])
        current.append(layers[-1])
    return probes, current


def _group_matches(rows: list[MatchRow]) -> dict[int, list[MatchRow]]:
    grouped: dict[int, list[MatchRow]] = {}
    for row in rows:
        grouped.setdefault(row.n, []).append(row)
    return grouped


def _result_body(n: int, rows: list[MatchRow], velocity: dict, actor: Actor) -> dict:
    reporting_members = len({row.member_id for row in rows})
    disclose = settings.REGISTRY_DISCLOSE_REPORTERS
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
    return {"matched": bool(cases), "cases": cases,
            "velocity": velocity.get(n, ZERO_VELOCITY).copy()}


def _record_sightings(actor: Actor, lookup: Lookup, distinct: list[tuple[str, str]],
                      current: list[bytes], now) -> None:
    """The log rows and the velocity rollup: two multi-row statements."""
    params = {
        "lookup": lookup.pk,
        "member": actor.member_id,
        "version": tokens.current_pepper_version(),
        "now": now,
        "kind": [kind for kind, _token in distinct],
        "digest": current,
    }
    with connection.cursor() as cursor:
        cursor.execute(_LOG_SQL, params)
        cursor.execute(_SIGHTING_SQL, params)

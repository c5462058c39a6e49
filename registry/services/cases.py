"""Submitting and withdrawing cases.

A case is stored as one `Case` row and one `CaseIdentifier` per identifier, holding
`digest = HMAC(pepper, token)` at the current pepper version and a fingerprint; the token
itself is dropped as soon as it is digested.

Single and batch submission share one set-based path (`_create_cases`), so that a batch of
500 cases with 20 identifiers each costs a handful of statements, not 10,000 round trips:

1. business checks that need the database or the clock (known category, `confirmed_at` not
   in the future and not already past retention, reference free among the member's live
   cases and within the batch) turn bad cases into errors without touching the others;
2. the remaining cases are inserted with one `INSERT ... SELECT unnest(...) ON CONFLICT DO
   NOTHING RETURNING id`. A case missing from RETURNING lost a race for its reference against
   a concurrent submission (the partial unique index `one_live_case_per_reference` makes the
   second inserter wait for the first to commit, then skip its row): it becomes 409
   `conflict`, and exactly one submission wins;
3. identifiers (one INSERT ... unnest for all of them) and one audit event per created case
   are written in the same transaction.

The arrays travel as binary parameters (registry/sql.py): quoting 10,000 digests into SQL
text, as Django's bulk_create does, measured slower than the inserts themselves.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import tokens
from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import (
    BatchTooLarge,
    Conflict,
    FieldError,
    NotFound,
    RegistryError,
    ValidationFailed,
)
from registry.ids import uuid7
from registry.models import (
    LIVE_CASE_STATUSES,
    Case,
    CaseIdentifier,
    CaseStatus,
    Category,
    IdentifierKind,
)
from registry.services.audit import audit_build, audit_record_many
from registry.services.case_lifecycle import (
    case_alerts_enqueue,
    case_rings_enqueue,
    case_withdraw_locked,
)
from registry.sql import execute_binary, unnest_insert, unnest_params

MAX_IDENTIFIERS_PER_CASE = 20
MAX_CASES_PER_BATCH = 500
KINDS = frozenset(IdentifierKind.values)


@dataclass(frozen=True)
class NewCase:
    """One case as the member sent it, already checked for shape (the API's serializer):
    1 to 20 identifiers, well-formed tokens, no token twice, no raw identifier anywhere."""

    reference: str
    category: str
    confirmed_at: date
    identifiers: list[tuple[str, str]]  # (kind, token)


def case_submit(*, actor: Actor, case: NewCase) -> Case:
    """Record one confirmed case of the calling member. Raises ValidationFailed (unknown
    category, future or too old `confirmed_at`) or Conflict (reference already live)."""
    (result,) = case_submit_batch(actor=actor, cases=[case])
    if isinstance(result, RegistryError):
        raise result
    return result


@transaction.atomic
def case_submit_batch(*, actor: Actor, cases: list[NewCase]) -> list[Case | RegistryError]:
    """Record many cases at once; one result per case, in order: the created Case or the
    error that refused it. One bad case never blocks the others."""
    if not actor.is_member:
        raise NotFound(_("Only members report cases."))
    if len(cases) > MAX_CASES_PER_BATCH:
        raise BatchTooLarge(_("At most %(n)d cases per batch.") % {"n": MAX_CASES_PER_BATCH})
    return _create_cases(actor, cases)


def _create_cases(actor: Actor, cases: list[NewCase]) -> list[Case | RegistryError]:
    retention = dict(Category.objects.values_list("code", "retention_days"))
    today = timezone.localdate()
    results: list[Case | RegistryError | None] = [
        _check_case(case, retention, today) for case in cases
    ]
    _refuse_taken_references(actor, cases, results)
    now = timezone.now()  # one submission: its cases share their creation time
    pending = {
        index: _new_case_row(actor, case, retention[case.category], now)
        for index, case in enumerate(cases)
        if results[index] is None
    }
    created = _insert_cases(list(pending.values()))
    identifiers, events = [], []
    for index, row in pending.items():
        if row.pk not in created:  # a concurrent submission took the reference first
            results[index] = _reference_taken()
            continue
        row.identifier_rows = _identifier_rows(row, cases[index].identifiers)
        identifiers.extend(row.identifier_rows)
        events.append(_created_event(actor, row))
        results[index] = row
    _insert_identifiers(identifiers)
    audit_record_many(events)
    case_alerts_enqueue(row.pk for row in pending.values() if row.pk in created)
    case_rings_enqueue(row.pk for row in pending.values() if row.pk in created)
    return results


def _check_case(case: NewCase, retention: dict[str, int], today: date) -> RegistryError | None:
    """The checks the serializer cannot make: they need the categories or the clock."""
    if case.category not in retention:
        return _invalid("/category", "unknown_category", _("Unknown category."))
    if case.confirmed_at > today:
        return _invalid("/confirmed_at", "in_future", _("confirmed_at cannot be in the future."))
    if case.confirmed_at + timedelta(days=retention[case.category]) <= today:
        return _invalid(
            "/confirmed_at",
            "past_retention",
            _("This case is older than its category's retention period."),
        )
    for index, (kind, token) in enumerate(case.identifiers):  # the API checks first
        if kind not in KINDS or not tokens.is_token(token):
            return _invalid(
                f"/identifiers/{index}", "invalid_identifier", _("Unknown kind or bad token.")
            )
    if len({token for _kind, token in case.identifiers}) != len(case.identifiers):
        return _invalid("/identifiers", "duplicate_token", _("A token appears twice."))
    if not 1 <= len(case.identifiers) <= MAX_IDENTIFIERS_PER_CASE:
        return _invalid(
            "/identifiers",
            "too_many_identifiers",
            _("A case has 1 to %(n)d identifiers.") % {"n": MAX_IDENTIFIERS_PER_CASE},
        )
    return None


def _invalid(pointer: str, code: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        _("The case has an invalid field; see errors."), [FieldError(pointer, code, detail)]
    )


def _reference_taken() -> Conflict:
    return Conflict(
        _("You already have a live case with this reference."),
        [FieldError("/reference", "duplicate_reference", _("Reference already in use."))],
    )


# The ORM's `reference__in` quoted 500 references into the SQL text, whose parsing cost more
# than the query; an array parameter does not. The statuses are literals so that the planner
# sees the predicate of the partial unique index one_live_case_per_reference and uses it.
_TAKEN_REFERENCES_SQL = f"""
    SELECT reference FROM {Case._meta.db_table}
    WHERE member_id = %(member)s AND reference = ANY(%(references)b::text[])
      AND status IN ({", ".join(f"'{status}'" for status in LIVE_CASE_STATUSES)})
"""  # noqa: S608 - the table name and statuses are the code's own, values are parameters


def _refuse_taken_references(
    actor: Actor, cases: list[NewCase], results: list[Case | RegistryError | None]
) -> None:
    """A reference already live for this member, or used earlier in the same batch, is a
    conflict. (The unique index is the last word under concurrency; this gives the common
    case its answer without an insert.)"""
    wanted = [case.reference for index, case in enumerate(cases) if results[index] is None]
    rows = execute_binary(
        _TAKEN_REFERENCES_SQL,
        {"member": actor.member_id, "references": wanted},
    )
    taken = {reference for (reference,) in rows}
    for index, case in enumerate(cases):
        if results[index] is not None:
            continue
        if case.reference in taken:
            results[index] = _reference_taken()
        taken.add(case.reference)


def _new_case_row(actor: Actor, case: NewCase, retention_days: int, now: datetime) -> Case:
    return Case(
        id=uuid7(),
        member_id=actor.member_id,
        reference=case.reference,
        category_id=case.category,
        status=CaseStatus.ACTIVE,
        confirmed_at=case.confirmed_at,
        expires_at=case.confirmed_at + timedelta(days=retention_days),
        created_at=now,
        status_changed_at=now,
        subject_statement="",
    )


_CASE_COLUMNS = {
    "id": "uuid",
    "member_id": "bigint",
    "reference": "text",
    "category_id": "text",
    "status": "text",
    "confirmed_at": "date",
    "expires_at": "date",
    "created_at": "timestamptz",
    "status_changed_at": "timestamptz",
    "subject_statement": "text",
}
_INSERT_CASES_SQL = unnest_insert(
    Case._meta.db_table, _CASE_COLUMNS, then="ON CONFLICT DO NOTHING RETURNING id"
)
_IDENTIFIER_COLUMNS = {
    "case_id": "uuid",
    "kind": "text",
    "digest": "bytea",
    "pepper_version": "smallint",
    "fingerprint": "text",
}
_INSERT_IDENTIFIERS_SQL = unnest_insert(CaseIdentifier._meta.db_table, _IDENTIFIER_COLUMNS)


def _insert_cases(rows: list[Case]) -> set:
    """One INSERT for all cases; returns the ids actually inserted. ON CONFLICT DO NOTHING
    skips a case whose reference a concurrent transaction made live first (it waits for
    that transaction to end, then skips), instead of failing the whole batch."""
    if not rows:
        return set()
    return {row[0] for row in execute_binary(_INSERT_CASES_SQL, unnest_params(rows, _CASE_COLUMNS))}


class IdentifierRow(NamedTuple):
    """A CaseIdentifier row to insert (and to answer with). Not a model instance: building
    one per identifier cost about 5% of a 500-case submission's CPU time, and nothing here
    needs a model."""

    case_id: uuid.UUID
    kind: str
    digest: bytes
    pepper_version: int
    fingerprint: str


def _insert_identifiers(rows: list[IdentifierRow]) -> None:
    if not rows:
        return
    execute_binary(_INSERT_IDENTIFIERS_SQL, unnest_params(rows, _IDENTIFIER_COLUMNS), fetch=False)


def _identifier_rows(case: Case, identifiers: list[tuple[str, str]]) -> list[IdentifierRow]:
    version = tokens.current_pepper_version()
    rows = []
    for kind, token in identifiers:
        digest, fingerprint = tokens.digest_and_fingerprint(token)
        rows.append(IdentifierRow(case.pk, kind, digest, version, fingerprint))
    return rows


def _created_event(actor: Actor, case: Case):
    # Neither the reference (the member's free text) nor identifier fingerprints: the trail is
    # permanent, and either would tie a person to the case long after the case is gone.
    # Kinds and a count are enough to audit what was submitted.
    return audit_build(
        actor=actor,
        action=AuditAction.CASE_SUBMITTED,
        object_type="case",
        object_id=case.pk,
        details={
            # The member's free text: its length only (the case row keeps the reference, and
            # the append-only audit trail never holds free text).
            "reference_length": len(case.reference),
            "category": case.category_id,
            "confirmed_at": case.confirmed_at.isoformat(),
            "expires_at": case.expires_at.isoformat(),
            "identifiers": len(case.identifier_rows),
            "identifier_kinds": sorted({row.kind for row in case.identifier_rows}),
        },
    )


@transaction.atomic
def case_withdraw(*, actor: Actor, case_id, reason: str) -> Case:
    """The reporting member takes its case back: status `withdrawn`, identifiers purged at
    once, and an undecided dispute of the case closed as upheld (the subject got what they
    asked for). Only from `active` or `disputed`; another member's case is 404."""
    case = (
        Case.objects.select_for_update().filter(pk=case_id, member_id=actor.member_id).first()
        if actor.is_member
        else None
    )
    if case is None:
        raise NotFound(_("No such case."))
    case_withdraw_locked(actor=actor, case=case, reason=reason)
    return case

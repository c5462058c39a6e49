"""Watches: a member keeps watching a borrower's identifiers for the life of a loan (api.md
"Monitoring"). A watch stores the identifier as a peppered digest at the current version,
like a case identifier, never the token.

One watch per (member, kind, digest): watching an identifier again extends the watch (its
expiry becomes the later of the two; purpose, consent reference and label are the latest
call's). All identifiers of a call are written by ONE upsert. Deleting a watch (the member, or
the expiry job) deletes its row; the alerts it raised stay for their retention period.
Every create and delete is audited, one event per watch (no fingerprint: the trail is
permanent and must not tie a person to a member's monitoring after the watch is gone).
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import tokens
from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import BatchTooLarge, FieldError, NotFound, ValidationFailed
from registry.ids import uuid7
from registry.models import IdentifierKind, Watch, WatchPurpose
from registry.services.audit import audit_build, audit_record, audit_record_many
from registry.sql import compact, execute_binary

MAX_IDENTIFIERS_PER_WATCH = 1000
DEFAULT_WATCH_DAYS = 180
MAX_WATCH_DAYS = 366
KINDS = frozenset(IdentifierKind.values)

_WATCH_COLUMNS = {
    "id": "uuid",
    "member_id": "bigint",
    "kind": "text",
    "digest": "bytea",
    "pepper_version": "smallint",
    "fingerprint": "text",
    "purpose": "text",
    "consent_reference": "text",
    "label": "text",
    "created_at": "timestamptz",
    "expires_on": "date",
}
_TABLE = Watch._meta.db_table
# xmax = 0 on a row RETURNING gives back: it was inserted, not updated (PostgreSQL's
# documented-by-use idiom for telling the two apart in an upsert).
_UPSERT_SQL = compact(f"""
    INSERT INTO {_TABLE} AS w ({", ".join(_WATCH_COLUMNS)})
    SELECT * FROM unnest({", ".join(f"%({c})b::{t}[]" for c, t in _WATCH_COLUMNS.items())})
    ON CONFLICT (member_id, kind, digest) DO UPDATE
    SET expires_on = GREATEST(w.expires_on, EXCLUDED.expires_on),
        purpose = EXCLUDED.purpose,
        consent_reference = EXCLUDED.consent_reference,
        label = EXCLUDED.label
    RETURNING w.id, w.kind, w.digest, w.fingerprint, w.label, w.expires_on, (w.xmax = 0)
""")  # noqa: S608 - the table and columns are the code's own, values are parameters


@dataclass(frozen=True)
class WatchRow:
    id: object
    kind: str
    fingerprint: str
    label: str
    expires_on: date
    created: bool


def watch_default_expiry(today: date) -> date:
    return today + timedelta(days=DEFAULT_WATCH_DAYS)


@transaction.atomic
def watch_create(
    *,
    actor: Actor,
    identifiers: list[tuple[str, str]],
    purpose: str,
    consent_reference: str,
    label: str = "",
    expires_on: date | None = None,
) -> list[WatchRow]:
    """Watch (or keep watching) identifiers (kind, token) for the calling member; one result
    per identifier, in order (an identifier given twice gets the same watch twice)."""
    today = timezone.localdate()
    expires_on = expires_on or watch_default_expiry(today)
    _check(actor, identifiers, purpose, consent_reference, expires_on, today)
    distinct = list(dict.fromkeys(identifiers))
    now = timezone.now()
    version = tokens.current_pepper_version()
    params = {column: [] for column in _WATCH_COLUMNS}
    # Sorted by digest: two concurrent calls sharing identifiers lock rows in the same order.
    for kind, digest, fingerprint in sorted(_digests(distinct), key=lambda row: row[1]):
        for column, value in (
            ("id", uuid7()),
            ("member_id", actor.member_id),
            ("kind", kind),
            ("digest", digest),
            ("pepper_version", version),
            ("fingerprint", fingerprint),
            ("purpose", purpose),
            ("consent_reference", consent_reference),
            ("label", label),
            ("created_at", now),
            ("expires_on", expires_on),
        ):
            params[column].append(value)
    rows = {
        (kind, bytes(digest)): WatchRow(pk, kind, fingerprint, lbl, exp, created)
        for pk, kind, digest, fingerprint, lbl, exp, created in execute_binary(_UPSERT_SQL, params)
    }
    by_identifier = {
        (kind, token): rows[(kind, digest)]
        for (kind, token), (_kind, digest, _fp) in zip(distinct, _digests(distinct), strict=True)
    }
    audit_record_many([_created_event(actor, row, purpose) for row in rows.values()])
    return [by_identifier[identifier] for identifier in identifiers]


def _digests(distinct: list[tuple[str, str]]) -> list[tuple[str, bytes, str]]:
    out = []
    for kind, token in distinct:
        digest, fingerprint = tokens.digest_and_fingerprint(token)
        out.append((kind, digest, fingerprint))
    return out


def _created_event(actor: Actor, row: WatchRow, purpose: str):
    return audit_build(
        actor=actor,
        action=AuditAction.WATCH_CREATED if row.created else AuditAction.WATCH_EXTENDED,
        object_type="watch",
        object_id=row.id,
        details={"kind": row.kind, "purpose": purpose, "expires_on": row.expires_on.isoformat()},
    )


def _check(
    actor: Actor,
    identifiers: list,
    purpose: str,
    consent_reference: str,
    expires_on: date,
    today: date,
) -> None:
    """The API checks shapes first; this guards other callers and checks the dates."""
    if not actor.is_member:
        raise NotFound(_("Only members watch identifiers."))
    if len(identifiers) > MAX_IDENTIFIERS_PER_WATCH:
        raise BatchTooLarge(
            _("Send at most %(n)d identifiers per call.") % {"n": MAX_IDENTIFIERS_PER_WATCH},
            [FieldError("/identifiers", "batch_too_large", _("Too many identifiers."))],
        )
    errors = []
    if not identifiers:
        errors.append(FieldError("/identifiers", "required", _("At least one identifier.")))
    errors += [
        FieldError(f"/identifiers/{index}", "invalid_identifier", _("Unknown kind or bad token."))
        for index, (kind, token) in enumerate(identifiers)
        if kind not in KINDS or not tokens.is_token(token)
    ]
    if purpose not in WatchPurpose.values:
        errors.append(FieldError("/purpose", "invalid_choice", _("Unknown purpose.")))
    if not consent_reference.strip():
        errors.append(
            FieldError("/consent_reference", "required", _("A watch needs the subject's consent."))
        )
    if not today < expires_on <= today + timedelta(days=MAX_WATCH_DAYS):
        errors.append(
            FieldError(
                "/expires_on",
                "out_of_range",
                _("expires_on is after today and at most %(n)d days ahead.")
                % {"n": MAX_WATCH_DAYS},
            )
        )
    if errors:
        raise ValidationFailed(_("The watch request has invalid fields; see errors."), errors)


@transaction.atomic
def watch_delete(*, actor: Actor, watch_id) -> None:
    """Delete one of the caller's watches (the row, not a flag); anyone else's is 404."""
    deleted, _per_model = Watch.objects.filter(
        pk=watch_id, member_id=actor.member_id if actor.is_member else None
    ).delete()
    if not deleted:
        raise NotFound(_("No such watch."))
    audit_record(
        actor=actor, action=AuditAction.WATCH_DELETED, object_type="watch", object_id=watch_id
    )


@transaction.atomic
def watches_expire_batch(*, today: date, batch_size: int) -> int:
    """Delete up to `batch_size` watches whose expiry date has passed (as of `today`) and
    record one audit event for them; returns how many. SKIP LOCKED: two runs never take the
    same rows."""
    ids = list(
        Watch.objects.filter(expires_on__lt=today)
        .order_by("expires_on", "id")
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    Watch.objects.filter(id__in=ids).delete()
    audit_record(
        actor=Actor.system(),
        action=AuditAction.WATCHES_EXPIRED,
        object_type="watch",
        details={
            "watches": len(ids),
            "expired_before": today.isoformat(),
            "watch_ids": [str(pk) for pk in ids],
        },
    )
    return len(ids)

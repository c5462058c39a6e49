"""Test data for the job tests, written with the ORM because the jobs care about states the
API cannot create on demand (cases already past their expiry date, lookups 90 days old).

Digests are the real ones (registry.tokens), so the lookup service finds these cases."""

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from registry import tokens
from registry.models import (
    Case,
    CaseIdentifier,
    CaseStatus,
    Lookup,
    LookupLogEntry,
    Member,
    Sighting,
)

KINDS = ("phone", "cn_resident_id", "bank_card", "imei", "email")


def random_token() -> str:
    """A well-formed token (512 bits, like an OPRF output)."""
    return secrets.token_hex(64)


@dataclass
class MadeCase:
    case: Case
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (kind, token)


def make_cases(
    member: Member,
    count: int,
    *,
    expires_at: date,
    identifiers_per_case: int = 2,
    status: str = CaseStatus.ACTIVE,
    category: str = "identity_theft",
) -> list[MadeCase]:
    """`count` cases of `member` expiring on `expires_at`, with fresh identifiers, in a few
    bulk inserts."""
    made = [
        MadeCase(
            Case(
                member=member,
                reference=f"JOB-{secrets.token_hex(8)}",
                category_id=category,
                status=status,
                confirmed_at=expires_at - timedelta(days=1826),
                expires_at=expires_at,
            )
        )
        for _ in range(count)
    ]
    Case.objects.bulk_create([m.case for m in made], batch_size=2000)
    rows = []
    for m in made:
        for n in range(identifiers_per_case):
            kind, token = KINDS[n % len(KINDS)], random_token()
            digest, fingerprint = tokens.digest_and_fingerprint(token)
            m.identifiers.append((kind, token))
            rows.append(
                CaseIdentifier(
                    case=m.case,
                    kind=kind,
                    digest=digest,
                    pepper_version=tokens.current_pepper_version(),
                    fingerprint=fingerprint,
                )
            )
    CaseIdentifier.objects.bulk_create(rows, batch_size=5000)
    return made


def make_lookup_log(member: Member, *, at: datetime, identifiers: int = 3) -> Lookup:
    """One lookup by `member` at time `at`, with its log rows and sightings."""
    lookup = Lookup.objects.create(
        member=member,
        purpose="loan_application",
        identifier_count=identifiers,
        match_count=0,
        created_at=at,
    )
    for n in range(identifiers):
        kind = KINDS[n % len(KINDS)]
        digest, _fingerprint = tokens.digest_and_fingerprint(random_token())
        LookupLogEntry.objects.create(
            lookup=lookup,
            member=member,
            kind=kind,
            digest=digest,
            pepper_version=tokens.current_pepper_version(),
            created_at=at,
        )
        Sighting.objects.create(
            kind=kind,
            digest=digest,
            member=member,
            last_seen_at=at,
            pepper_version=tokens.current_pepper_version(),
        )
    return lookup

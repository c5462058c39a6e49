"""Subject access: what the registry holds about one identifier, for a data subject's request
through a compliance officer. Officers only; audited with the fingerprint, never the token.

The token is digested under every configured pepper version, because during a pepper rotation
rows sit at different layers (registry/tokens.py).
"""

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import NotFound, ValidationFailed
from registry.models import CaseIdentifier, Dispute, IdentifierKind, LookupLogEntry, Watch
from registry.selectors.disputes import dispute_effective_status
from registry.services.audit import audit_record
from registry.tokens import digest_layers, fingerprint_of_v1, is_token


def _digest_q(layers: list[bytes]) -> Q:
    q = Q()
    for version, digest in enumerate(layers, start=1):
        q |= Q(digest=digest, pepper_version=version)
    return q


def subject_access_report(*, actor: Actor, kind: str, token: str) -> dict:
    """Audited read: every case still on record with this identifier (closed cases have had
    their identifiers purged, so they no longer are), every logged lookup of it and every
    live watch of it (expired ones are deleted by a job; not yet deleted ones are left out)."""
    if not actor.is_officer:
        raise NotFound(_("No such resource."))
    if kind not in IdentifierKind.values or not is_token(token):
        raise ValidationFailed(_("A known kind and a 128-hex token are required."))
    layers = digest_layers(token)
    fingerprint = fingerprint_of_v1(layers[0])
    report = {
        "kind": kind,
        "fingerprint": fingerprint,
        "generated_at": timezone.now(),
        "cases": _cases(kind, layers),
        "lookups": _lookups(kind, layers),
        "watches": _watches(kind, layers),
    }
    audit_record(
        actor=actor,
        action=AuditAction.SUBJECT_ACCESS,
        object_type="identifier",
        object_id=fingerprint,
        details={
            "kind": kind,
            "fingerprint": fingerprint,
            "cases": len(report["cases"]),
            "lookups": len(report["lookups"]),
            "watches": len(report["watches"]),
        },
    )
    return report


def _cases(kind: str, layers: list[bytes]) -> list[dict]:
    rows = (
        CaseIdentifier.objects.filter(_digest_q(layers), kind=kind)
        .select_related("case", "case__member")
        .order_by("-case__created_at", "case_id")
    )
    cases = {}
    for row in rows:
        cases.setdefault(row.case_id, row.case)
    disputes = _disputes_by_case(list(cases))
    return [_case_dict(case, disputes.get(case.pk, [])) for case in cases.values()]


def _case_dict(case, disputes: list[dict]) -> dict:
    return {
        "case_id": case.pk,
        "member": case.member.code,
        "category": case.category_id,
        "status": case.status,
        "confirmed_at": case.confirmed_at,
        "expires_at": case.expires_at,
        "created_at": case.created_at,
        "has_subject_statement": bool(case.subject_statement),
        "disputes": disputes,
    }


def _disputes_by_case(case_ids: list) -> dict:
    out: dict = {}
    now = timezone.now()
    for dispute in Dispute.objects.filter(case_id__in=case_ids).order_by("filed_at"):
        out.setdefault(dispute.case_id, []).append(
            {
                "dispute_id": dispute.pk,
                "status": dispute_effective_status(dispute, now=now),
                "reason": dispute.reason,
                "filed_at": dispute.filed_at,
                "due_at": dispute.due_at,
                "decided_at": dispute.decided_at,
            }
        )
    return out


def _lookups(kind: str, layers: list[bytes]) -> list[dict]:
    rows = (
        LookupLogEntry.objects.filter(_digest_q(layers), kind=kind)
        .select_related("lookup", "member")
        .order_by("-created_at", "-pk")
    )
    seen = set()
    lookups = []
    for entry in rows:
        if entry.lookup_id in seen:  # the same identifier twice in one lookup counts once
            continue
        seen.add(entry.lookup_id)
        lookups.append(
            {
                "lookup_id": entry.lookup_id,
                "member": entry.member.code,
                "looked_up_at": entry.created_at,
                "purpose": entry.lookup.purpose,
            }
        )
    return lookups


def _watches(kind: str, layers: list[bytes]) -> list[dict]:
    rows = (
        Watch.objects.filter(_digest_q(layers), kind=kind, expires_on__gte=timezone.localdate())
        .select_related("member")
        .order_by("-created_at", "-pk")
    )
    return [
        {
            "watch_id": watch.pk,
            "member": watch.member.code,
            "watched_since": watch.created_at,
            "purpose": watch.purpose,
            "expires_on": watch.expires_on,
        }
        for watch in rows
    ]

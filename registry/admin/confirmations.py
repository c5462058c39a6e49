"""The second look before the irreversible, enforced by the server: upholding a dispute (the
case is removed, its identifiers purged) and revoking keys in bulk act only on a POST that
carries the confirmation token of the summary page the officer was shown.

A token is signed with the project's SECRET_KEY (django.core.signing, its own salt per
action), names what it confirms (the dispute and the decision; the exact set of keys) and the
officer it was shown to, and lapses after CONFIRMATION_MAX_AGE. A POST without one, with one
for something else, or with a lapsed one changes nothing: it gets the summary page again."""

from django.core import signing

CONFIRMATION_FIELD = "confirmation"
CONFIRMATION_MAX_AGE = 3600  # seconds: a summary left open longer is shown again

UPHOLD_SALT = "registry.admin.confirm.uphold"
REVOKE_SALT = "registry.admin.confirm.revoke_keys"


def _sign(salt: str, value: dict) -> str:
    return signing.TimestampSigner(salt=salt).sign_object(value)


def _valid(salt: str, token: str, expected: dict) -> bool:
    if not token:
        return False
    try:
        value = signing.TimestampSigner(salt=salt).unsign_object(
            token, max_age=CONFIRMATION_MAX_AGE
        )
    except signing.BadSignature:  # includes SignatureExpired
        return False
    return value == expected


def _uphold(user, dispute_id, outcome: str) -> dict:
    return {"dispute": str(dispute_id), "outcome": str(outcome), "officer": user.pk}


def uphold_token(user, dispute_id, outcome: str) -> str:
    return _sign(UPHOLD_SALT, _uphold(user, dispute_id, outcome))


def uphold_confirmed(request, dispute_id, outcome: str) -> bool:
    token = request.POST.get(CONFIRMATION_FIELD, "")
    return _valid(UPHOLD_SALT, token, _uphold(request.user, dispute_id, outcome))


def _revoke(user, key_ids) -> dict:
    return {"keys": sorted(int(pk) for pk in key_ids), "officer": user.pk}


def revoke_token(user, key_ids) -> str:
    return _sign(REVOKE_SALT, _revoke(user, key_ids))


def revoke_confirmed(request, key_ids) -> bool:
    token = request.POST.get(CONFIRMATION_FIELD, "")
    return _valid(REVOKE_SALT, token, _revoke(request.user, key_ids))

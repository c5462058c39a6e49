"""Builders for test data that other test modules reuse.

- `token_for(kind, canonical)`: the REAL token a member would compute for a canonical
  identifier (OPRF under the registry's test key, unblinded: equal to blind/evaluate/finalize).
- `case_payload(**overrides)`: a valid body for POST /api/v1/cases (unique reference, one
  fresh phone token unless `identifiers` is given).
- `submit_case(party, **overrides)`: posts it as `party` (tests.support.world.Party), asserts
  201 and returns the case as the API answered it.
- `lookup(party, identifiers, **overrides)`: posts a lookup, asserts 200, returns the body.
- `listed_case(world)`: a case alice (or `party`) listed with one fresh phone, and that phone.
- `disputed_case(world)`: such a case with a dispute bob filed about it (`file_dispute`).
"""

import itertools
from datetime import date, timedelta

from registry_client import oprf

from registry.services.oprf import server_key

CASES = "/api/v1/cases"
LOOKUPS = "/api/v1/lookups"
DISPUTES = "/api/v1/disputes"
STATEMENT = "The subject says the loan was taken out with stolen documents."

_counter = itertools.count(1)


def token_for(kind: str, canonical: str) -> str:
    sk, _pk, _key_id = server_key()
    return oprf.token_hex(oprf.evaluate(sk, oprf.oprf_input(kind, canonical)))


def fresh_phone() -> str:
    """A canonical mobile number no other call of this module has handed out."""
    return f"+86139{next(_counter):08d}"


def identifier(kind: str, canonical: str) -> dict:
    return {"kind": kind, "token": token_for(kind, canonical)}


def case_payload(**overrides) -> dict:
    body = {
        "reference": f"CASE-{next(_counter):06d}",
        "category": "identity_theft",
        "confirmed_at": (date.today() - timedelta(days=1)).isoformat(),
        "identifiers": [identifier("phone", fresh_phone())],
        "attestation": True,
    }
    body.update(overrides)
    return body


def submit_case(party, **overrides) -> dict:
    response = party.post(CASES, case_payload(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def lookup(party, identifiers: list[dict], **overrides) -> dict:
    body = {"purpose": "loan_application", "identifiers": identifiers, **overrides}
    response = party.post(LOOKUPS, body)
    assert response.status_code == 200, response.content
    return response.json()


def listed_case(world, party=None, **overrides):
    ident = identifier("phone", fresh_phone())
    return submit_case(party or world.alice, identifiers=[ident], **overrides), ident


def file_dispute(party, case_id, ident: dict, statement: str = STATEMENT) -> dict:
    response = party.post(
        DISPUTES,
        {
            "case_id": str(case_id),
            "identifier": ident,
            "reason": "identity_stolen",
            "statement": statement,
        },
    )
    assert response.status_code == 201, response.content
    return response.json()


def disputed_case(world):
    case, ident = listed_case(world)
    dispute = file_dispute(world.bob, case["id"], ident)
    return case, ident, dispute

"""The member gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand (the gateway has no framework to derive it from); tests check that every
route the gateway serves is in it and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from . import __version__
from .canonical import KINDS

_PURPOSES = ["loan_application", "account_opening", "credit_review", "fraud_investigation"]
_CATEGORIES = [
    "identity_theft",
    "forged_documents",
    "synthetic_identity",
    "first_party_fraud",
    "account_takeover",
    "money_mule",
    "loan_intermediary_fraud",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    described = {
        400: "Bad input (validation_error, malformed_json, batch_too_large, raw_pii_rejected), "
        "or no identifier could be canonicalised",
        401: "Missing or wrong gateway secret",
        403: "Forbidden (scope at the registry, or a non-loopback Host without a secret)",
        409: "Conflict at the registry",
        413: "Body larger than the gateway's limit",
        415: "Content-Type is not application/json",
        422: "idempotency_mismatch",
        429: "The registry's rate limit or quota; wait Retry-After seconds",
        502: "The registry (or its custodians) failed: registry_unreachable, "
        "registry_unauthenticated, invalid_proof, not_enough_evaluators, key_id_mismatch",
        503: "The registry or the gateway is busy; wait Retry-After seconds",
    }
    answers = {}
    for status in statuses:
        answers[str(status)] = {
            "description": described[status],
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
        if status in (429, 503):
            answers[str(status)]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
    return answers


_COMMON = (400, 401, 403, 413, 415, 429, 502, 503)

_SCHEMAS: dict[str, Any] = {
    "Identifier": {
        "type": "object",
        "required": ["kind", "value"],
        "properties": {
            "kind": {"type": "string", "enum": list(KINDS)},
            "value": {
                "type": "string",
                "description": "The raw identifier as the member holds it; canonicalised, "
                "blinded and tokenised by the gateway, never sent, logged or echoed.",
            },
        },
    },
    "IdentifierError": {
        "type": "object",
        "required": ["index", "code"],
        "properties": {
            "index": {"type": "integer", "description": "Position in the request"},
            "code": {
                "type": "string",
                "description": "invalid_<kind>, unknown_kind or invalid_value",
            },
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details, as the registry's",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "pointer": {"type": "string"},
                        "code": {"type": "string"},
                        "detail": {"type": "string"},
                        "index": {"type": "integer"},
                    },
                },
            },
        },
    },
    "LookupRequest": {
        "type": "object",
        "required": ["purpose", "identifiers"],
        "properties": {
            "purpose": {"type": "string", "enum": _PURPOSES},
            "consent_reference": {"type": "string"},
            "identifiers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": _ref("Identifier"),
            },
        },
    },
    "LookupResult": {
        "type": "object",
        "description": "The registry's result for one identifier, without its token",
        "properties": {
            "index": {"type": "integer"},
            "kind": {"type": "string"},
            "matched": {"type": "boolean"},
            "cases": {"type": "array", "items": {"type": "object"}},
            "velocity": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "LookupAnswer": {
        "type": "object",
        "properties": {
            "lookup_id": {"type": "string"},
            "results": {"type": "array", "items": _ref("LookupResult")},
            "errors": {"type": "array", "items": _ref("IdentifierError")},
        },
    },
    "Case": {
        "type": "object",
        "required": ["reference", "category", "confirmed_at", "identifiers", "attestation"],
        "properties": {
            "reference": {"type": "string"},
            "category": {"type": "string", "enum": _CATEGORIES},
            "confirmed_at": {"type": "string", "format": "date"},
            "identifiers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": _ref("Identifier"),
            },
            "attestation": {"type": "boolean", "const": True},
        },
    },
    "CaseBatchRequest": {
        "type": "object",
        "required": ["cases"],
        "properties": {
            "cases": {"type": "array", "minItems": 1, "maxItems": 500, "items": _ref("Case")}
        },
    },
    "CaseBatchAnswer": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "string", "enum": ["created", "error"]},
                        "case": {"type": "object"},
                        "error": _ref("Problem"),
                        "replayed": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "WatchRequest": {
        "type": "object",
        "required": ["purpose", "identifiers"],
        "properties": {
            "purpose": {"type": "string", "enum": ["loan_monitoring", "account_monitoring"]},
            "consent_reference": {"type": "string"},
            "label": {"type": "string"},
            "expires_on": {"type": "string", "format": "date"},
            "identifiers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": _ref("Identifier"),
            },
        },
    },
    "WatchAnswer": {
        "type": "object",
        "properties": {
            "watches": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": "string"},
                        "kind": {"type": "string"},
                        "fingerprint": {"type": "string"},
                        "label": {"type": "string"},
                        "expires_on": {"type": "string", "format": "date"},
                    },
                },
            },
            "errors": {"type": "array", "items": _ref("IdentifierError")},
        },
    },
    "AlertPage": {
        "type": "object",
        "properties": {
            "next": {"type": ["string", "null"]},
            "previous": {"type": ["string", "null"]},
            "results": {"type": "array", "items": {"type": "object"}},
        },
    },
}

_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Passed to the registry: a repeat with the same key and body returns the "
    "first answer",
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Consortium registry - member gateway",
        "version": __version__,
        "description": "Runs inside the member's network. Raw identifiers in, the registry's "
        "answers out, without tokens; the gateway does contract v2's cryptography. Answers "
        "and logs never contain a raw value or a token.",
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"gatewaySecret": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"gatewaySecret": []}],
    "paths": {
        "/v1/lookups": {
            "post": {
                "summary": "Look raw identifiers up",
                "requestBody": {"required": True, **_json(_ref("LookupRequest"), "")},
                "responses": {
                    "200": _json(_ref("LookupAnswer"), "Results in request order"),
                    **_problems(*_COMMON),
                },
            }
        },
        "/v1/cases": {
            "post": {
                "summary": "Report one confirmed case",
                "parameters": [_IDEMPOTENCY],
                "requestBody": {"required": True, **_json(_ref("Case"), "")},
                "responses": {
                    "201": _json({"type": "object"}, "The case, as the registry answered"),
                    **_problems(*_COMMON, 409, 422),
                },
            }
        },
        "/v1/cases/batch": {
            "post": {
                "summary": "Report up to 500 cases",
                "parameters": [_IDEMPOTENCY],
                "requestBody": {"required": True, **_json(_ref("CaseBatchRequest"), "")},
                "responses": {
                    "200": _json(_ref("CaseBatchAnswer"), "One result per case, in order"),
                    **_problems(*_COMMON, 422),
                },
            }
        },
        "/v1/watches": {
            "post": {
                "summary": "Watch raw identifiers (monitoring)",
                "requestBody": {"required": True, **_json(_ref("WatchRequest"), "")},
                "responses": {
                    "201": _json(_ref("WatchAnswer"), "One watch per accepted identifier"),
                    **_problems(*_COMMON),
                },
            }
        },
        "/v1/alerts": {
            "get": {
                "summary": "The member's alerts, oldest first (the registry's, passed on)",
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
                    for name, kind in (
                        ("after", "string"),
                        ("cursor", "string"),
                        ("page_size", "integer"),
                    )
                ],
                "responses": {
                    "200": _json(_ref("AlertPage"), "A page of alerts"),
                    **_problems(400, 401, 403, 429, 502, 503),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "200 while the gateway runs",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "ok")},
            }
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return copy.deepcopy(_DOCUMENT)

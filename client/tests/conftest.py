"""Fixtures for the member-side client tests: a small fake registry on a real HTTP socket.

The fake implements just enough of spec/api.md for the client: the key document and VOPRF
evaluation with proofs under a test key (through the same ``registry_client.oprf`` module the
server uses; ``lying_sk`` makes it evaluate and prove under another key), lookups that match tokens
of listed identifiers, case submission with reference conflicts and Idempotency-Key replay.
Tests can also queue canned answers (status, headers, body) to exercise retries and errors.
No Django, no mocks of urllib.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

try:
    import registry_client  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # client/

from registry_client import oprf
from registry_client.canonical import canonicalize

TEST_SEED = bytes(range(32))
TEST_INFO = b"consortium-registry/oprf/v2"
API_KEY = "test-member-key"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class FakeRegistry:
    """State of the fake registry; ``url`` is set once the server listens."""

    sk: bytes
    pk: bytes
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    canned: deque = field(default_factory=deque)  # (status, headers, body) answered first
    listed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # token -> cases
    velocity: dict[str, dict[str, int]] = field(default_factory=dict)  # token -> windows
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # live reference -> case
    idempotency: dict[str, tuple[str, int, Any]] = field(default_factory=dict)
    on_lookup: Callable[[], None] | None = None
    batch_calls_allowed: int | None = None  # then 503 for every batch call (a crash halfway)
    lying_sk: bytes | None = None  # evaluate (and prove) with this key instead
    watches: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> watch
    alerts: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    custodians: tuple[int, list[dict[str, Any]]] | None = None  # (threshold, evaluators)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_document(self) -> dict[str, Any]:
        evaluator = {"id": "registry", "index": 0, "url": self.url, "public_key": self.pk.hex()}
        threshold, evaluators = self.custodians or (1, [evaluator])
        return {
            "suite": "ristretto255-SHA512",
            "mode": "voprf",
            "key_id": self.key_id,
            "public_key": self.pk.hex(),
            "threshold": threshold,
            "evaluators": evaluators,
        }

    @property
    def key_id(self) -> str:
        return oprf.key_id(self.pk)

    def token_of(self, kind: str, value: str) -> str:
        """The token the registry's key gives a raw value (computed without blinding)."""
        private_input = oprf.oprf_input(kind, canonicalize(kind, value))
        return oprf.token_hex(oprf.evaluate(self.sk, private_input))

    def list_identifier(self, kind: str, value: str, *categories: str) -> str:
        token = self.token_of(kind, value)
        self.listed[token] = [
            {
                "case_id": str(uuid.uuid4()),
                "category": category,
                "confirmed_at": "2026-01-15",
                "status": "active",
                "reported_by_you": False,
                "reporting_members": 1,
                "has_subject_statement": False,
            }
            for category in categories
        ]
        return token

    def calls(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path.split("?")[0] == path]

    def all_sent_text(self) -> str:
        return "\n".join(request.raw.decode("utf-8", "replace") for request in self.requests)


def problem(status: int, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": code,
        "status": status,
        "detail": code,
        "code": code,
        **extra,
    }


class _Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry  # set on a subclass per server

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        registry = self.registry
        with registry.lock:
            registry.requests.append(Recorded(method, self.path, dict(self.headers), body, raw))
            canned = registry.canned.popleft() if registry.canned else None
        if canned is not None:
            self._send(*canned)
            return
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(401, {}, problem(401, "unauthenticated"))
            return
        route = {
            ("GET", "/api/v1/oprf/keys"): lambda _body: (200, {}, registry.key_document()),
            ("POST", "/api/v1/oprf/evaluate"): self._evaluate,
            ("POST", "/api/v1/lookups"): self._lookups,
            ("POST", "/api/v1/cases"): self._case,
            ("POST", "/api/v1/cases/batch"): self._cases_batch,
            ("POST", "/api/v1/watches"): self._watches,
            ("GET", "/api/v1/alerts"): self._alerts,
            ("POST", "/api/v1/disputes"): self._disputes,
        }.get((method, self.path.split("?")[0]))
        if route is None:
            self._send(404, {}, problem(404, "not_found"))
            return
        self._send(*route(body))

    def _evaluate(self, body: dict) -> tuple[int, dict, Any]:
        registry = self.registry
        try:
            elements = [oprf.parse_element_hex(text) for text in body["blinded_elements"]]
        except oprf.InvalidElement:
            return 400, {}, problem(400, "validation_error")
        sk = registry.lying_sk or registry.sk
        pk = oprf.public_share(sk)
        evaluated = oprf.blind_evaluate_many(sk, elements)
        answer = {
            "key_id": registry.key_id,
            "evaluator": "registry",
            "evaluated_elements": [e.hex() for e in evaluated],
            "proof": oprf.generate_proof(sk, pk, elements, evaluated).hex(),
        }
        return 200, {}, answer

    def _lookups(self, body: dict) -> tuple[int, dict, Any]:
        registry = self.registry
        if registry.on_lookup is not None:
            registry.on_lookup()
        results = []
        for item in body["identifiers"]:
            token = item["token"]
            cases = registry.listed.get(token, [])
            windows = {"1h": 0, "24h": 0, "7d": 0, "30d": 0, "90d": 0}
            windows.update(registry.velocity.get(token, {}))
            results.append(
                {
                    "kind": item["kind"],
                    "token": token,
                    "matched": bool(cases),
                    "cases": cases,
                    "velocity": windows,
                }
            )
        return 200, {}, {"lookup_id": str(uuid.uuid4()), "results": results}

    def _case(self, body: dict) -> tuple[int, dict, Any]:
        """One case: the batch's rules, answered 201 (or the case's own problem)."""
        key = self.headers.get("Idempotency-Key")
        body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        registry = self.registry
        if key and key in registry.idempotency:
            first_hash, status, answer = registry.idempotency[key]
            if first_hash != body_hash:
                return 422, {}, problem(422, "idempotency_mismatch")
            return status, {"Idempotent-Replayed": "true"}, answer
        if body["reference"] in registry.cases:
            return 409, {}, problem(409, "conflict")
        created = {
            "id": str(uuid.uuid4()),
            "reference": body["reference"],
            "category": body["category"],
            "status": "active",
            "identifiers": [
                {"kind": i["kind"], "fingerprint": i["token"][:8]} for i in body["identifiers"]
            ],
        }
        registry.cases[body["reference"]] = created
        if key:
            registry.idempotency[key] = (body_hash, 201, created)
        return 201, {}, created

    def _watches(self, body: dict) -> tuple[int, dict, Any]:
        """spec/api.md monitoring: one watch per identifier; watching again extends it."""
        if body.get("purpose") not in ("loan_monitoring", "account_monitoring"):
            errors = [{"pointer": "/purpose", "code": "invalid_choice", "detail": "purpose"}]
            return 400, {}, problem(400, "validation_error", errors=errors)
        watches = []
        for item in body["identifiers"]:
            watch = self.registry.watches.setdefault(
                item["token"],
                {"id": str(uuid.uuid4()), "kind": item["kind"], "fingerprint": item["token"][:8]},
            )
            watch.update(label=body.get("label", ""), expires_on=body.get("expires_on") or "")
            watches.append(dict(watch))
        return 201, {}, {"watches": watches}

    def _alerts(self, _body: Any) -> tuple[int, dict, Any]:
        """Pages of two alerts, oldest first; the cursor is the next position."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        start = int(query.get("cursor") or query.get("after") or 0)
        page = self.registry.alerts[start : start + 2]
        more = start + 2 < len(self.registry.alerts)
        next_link = f"{self.registry.url}/api/v1/alerts?cursor={start + 2}" if more else None
        return 200, {}, {"next": next_link, "previous": None, "results": page}

    def _cases_batch(self, body: dict) -> tuple[int, dict, Any]:
        registry = self.registry
        if registry.batch_calls_allowed is not None:
            if registry.batch_calls_allowed <= 0:
                return 503, {}, problem(503, "service_unavailable")
            registry.batch_calls_allowed -= 1
        key = self.headers.get("Idempotency-Key")
        body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if key and key in registry.idempotency:
            first_hash, status, answer = registry.idempotency[key]
            if first_hash != body_hash:
                return 422, {}, problem(422, "idempotency_mismatch")
            return status, {"Idempotent-Replayed": "true"}, answer
        results = []
        for index, case in enumerate(body["cases"]):
            if case["reference"] in registry.cases:
                results.append(
                    {"index": index, "status": "error", "error": problem(409, "conflict")}
                )
                continue
            created = {
                "id": str(uuid.uuid4()),
                "reference": case["reference"],
                "category": case["category"],
                "status": "active",
                "identifiers": [
                    {"kind": i["kind"], "fingerprint": i["token"][:8]} for i in case["identifiers"]
                ],
            }
            registry.cases[case["reference"]] = created
            results.append({"index": index, "status": "created", "case": created})
        answer = {"results": results}
        if key:
            registry.idempotency[key] = (body_hash, 200, answer)
        return 200, {}, answer

    def _disputes(self, body: dict) -> tuple[int, dict, Any]:
        """Filed only with an identifier of a listed case: the token must list that case id."""
        identifier = body.get("identifier")
        if not isinstance(identifier, dict) or set(identifier) != {"kind", "token"}:
            return 400, {}, problem(400, "validation_error")
        cases = self.registry.listed.get(identifier["token"], [])
        if body.get("case_id") not in {case["case_id"] for case in cases}:
            return 422, {}, problem(422, "identifier_not_on_case")
        dispute = {
            "id": str(uuid.uuid4()),
            "case_id": body["case_id"],
            "status": "open",
            "reason": body.get("reason"),
            "filed_at": "2026-12-01T09:00:00+08:00",
            "due_at": "2026-12-21T09:00:00+08:00",
        }
        return 201, {}, dispute

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        content_type = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    sk, pk = oprf.derive_key_pair(TEST_SEED, TEST_INFO)
    state = FakeRegistry(sk=sk, pk=pk)
    handler = type("Handler", (_Handler,), {"registry": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def make_problem() -> Callable[..., dict[str, Any]]:
    return problem

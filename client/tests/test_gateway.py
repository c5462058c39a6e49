"""The member gateway (`registry-client serve`) against the fake registry on real sockets.

Callers speak plain JSON with raw identifiers; the gateway must answer like the registry (as
the Python client sees it), never put a raw value or a token in an answer or a log line, pass
429/503 on at once with Retry-After, authenticate callers when it is reachable from elsewhere,
and stay correct with many callers at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from registry_client import cli, oprf
from registry_client.bulk import TokenCache
from registry_client.canonical import canonicalize
from registry_client.client import Client
from registry_client.gateway import (
    Gateway,
    GatewayServer,
    StartupError,
    make_server,
    server_ssl_context,
)
from registry_client.gateway_openapi import openapi_document

CLIENT_DIR = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-the-gateway-tests"  # noqa: S105 - a test secret
LISTED_PHONE = "13812345678"
LISTED_ID = "11010519491231002X"
# Raw values the tests send; none may appear in an answer or a log line.
RAW_VALUES = [
    LISTED_PHONE,
    "+86 138-1234-5678",
    "13912345678",
    LISTED_ID,
    "someone@example.com",
    "6222020200112233446",
    "12345",  # invalid phone
    "490154203237518",  # IMEI
]


@dataclass
class Running:
    url: str
    host: str
    port: int
    server: GatewayServer
    gateway: Gateway


def _start(gateway: Gateway, **options: Any) -> tuple[GatewayServer, threading.Thread]:
    server = make_server(gateway, options.pop("host", "127.0.0.1"), 0, **options)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    return server, thread


def _gateway_client(registry, api_key, **options) -> Client:
    # As `serve` builds it: one retry for failures without Retry-After, none after one.
    options = {"max_retries": 1, "max_retry_after": 0.0, "sleep": lambda _s: None, **options}
    return Client(registry.url, api_key, **options)


@pytest.fixture
def running(registry, api_key, request) -> Iterator[Running]:
    options = getattr(request, "param", {})
    client = _gateway_client(registry, api_key)
    gateway = Gateway(client, TokenCache(client, 1000, ttl=600))
    server, thread = _start(gateway, **options)
    host, port = server.server_address[:2]
    try:
        yield Running(f"http://{host}:{port}", host, port, server, gateway)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def call(
    target: Running | tuple[str, int],
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    host, port = (target.host, target.port) if isinstance(target, Running) else target
    connection = http.client.HTTPConnection(host, port, timeout=30)
    sent = {"Content-Type": "application/json", **(headers or {})}
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None
    finally:
        connection.close()


def _ids(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"kind": kind, "value": value} for kind, value in pairs]


def _without(result: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key not in names}


def _assert_no_raw_value(text: str) -> None:
    for value in RAW_VALUES:
        assert value not in text
    for kind, value in [("phone", LISTED_PHONE), ("cn_resident_id", LISTED_ID)]:
        assert canonicalize(kind, value) not in text


def _assert_nothing_leaks(text: str, registry) -> None:
    _assert_no_raw_value(text)
    for kind, value in [("phone", LISTED_PHONE), ("cn_resident_id", LISTED_ID)]:
        token = registry.token_of(kind, value)
        assert token not in text and token[:64] not in text


# -------------------------------------------------------------------------------------------
# Lookups
# -------------------------------------------------------------------------------------------


def test_it_looks_up_raw_values_in_request_order_with_errors_by_index(running, registry):
    registry.list_identifier("phone", LISTED_PHONE, "identity_theft")
    body = {
        "purpose": "loan_application",
        "identifiers": _ids(
            ("phone", "+86 138-1234-5678"),
            ("phone", "12345"),
            ("email", "someone@example.com"),
            ("passport", "E12345678"),
            ("cn_resident_id", LISTED_ID),
        ),
    }
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 200
    assert [result["index"] for result in answer["results"]] == [0, 2, 4]
    assert [result["matched"] for result in answer["results"]] == [True, False, False]
    assert answer["results"][0]["cases"][0]["category"] == "identity_theft"
    assert answer["errors"] == [
        {"index": 1, "code": "invalid_phone"},
        {"index": 3, "code": "unknown_kind"},
    ]
    assert answer["lookup_id"]
    assert all("token" not in result for result in answer["results"])
    # The registry got tokens of the three valid values, in order, and nothing raw.
    sent = registry.calls("/api/v1/lookups")[0].body["identifiers"]
    assert sent[0]["token"] == registry.token_of("phone", LISTED_PHONE)
    assert [item["kind"] for item in sent] == ["phone", "email", "cn_resident_id"]
    _assert_no_raw_value(registry.all_sent_text())
    _assert_nothing_leaks(json.dumps(answer), registry)


def test_it_answers_lookups_as_the_python_client_does(running, registry, api_key):
    registry.list_identifier("phone", LISTED_PHONE, "money_mule", "identity_theft")
    registry.list_identifier("cn_resident_id", LISTED_ID, "forged_documents")
    registry.velocity[registry.token_of("phone", LISTED_PHONE)] = {"24h": 3, "7d": 4}
    pairs = [("phone", LISTED_PHONE), ("cn_resident_id", LISTED_ID), ("phone", "13912345678")]
    client = Client(registry.url, api_key)
    tokens = [client.token(kind, value) for kind, value in pairs]
    identifiers = [{"kind": k, "token": t} for (k, _), t in zip(pairs, tokens, strict=True)]
    expected = client.lookup(identifiers, "credit_review")["results"]

    status, _, answer = call(
        running, "POST", "/v1/lookups", {"purpose": "credit_review", "identifiers": _ids(*pairs)}
    )
    assert status == 200 and answer["errors"] == []
    assert [_without(r, "index") for r in answer["results"]] == [
        _without(r, "token") for r in expected
    ]


def test_it_refuses_a_lookup_none_of_whose_values_canonicalise_and_sends_nothing(running, registry):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", "12345"))}
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 400 and answer["code"] == "validation_error"
    assert answer["errors"] == [
        {
            "index": 0,
            "pointer": "/identifiers/0/value",
            "code": "invalid_phone",
            "detail": "invalid_phone",
        }
    ]
    assert registry.requests == []


def test_it_refuses_a_raw_identifier_in_the_consent_reference_before_sending(running, registry):
    body = {
        "purpose": "loan_application",
        "consent_reference": "consent of 13912345678",
        "identifiers": _ids(("phone", LISTED_PHONE)),
    }
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 400 and answer["code"] == "raw_pii_rejected"
    assert registry.calls("/api/v1/lookups") == []
    assert "13912345678" not in json.dumps(answer)


def test_it_puts_registry_pointers_in_the_callers_terms(running, registry, make_problem):
    body = {
        "purpose": "loan_application",
        "identifiers": _ids(("phone", "12345"), ("phone", LISTED_PHONE), ("phone", "13912345678")),
    }
    call(running, "POST", "/v1/lookups", body)  # tokens now cached: the next call is a lookup
    errors = [{"pointer": "/identifiers/1/token", "code": "invalid_token", "detail": "x"}]
    registry.canned.append((400, {}, make_problem(400, "validation_error", errors=errors)))
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 400
    assert answer["errors"][0]["pointer"] == "/identifiers/2/value"


# -------------------------------------------------------------------------------------------
# 429 / 503 and upstream failures
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limited"), (503, "service_unavailable")])
def test_it_passes_429_and_503_on_at_once_with_retry_after(
    running, registry, make_problem, status, code
):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    assert call(running, "POST", "/v1/lookups", body)[0] == 200  # key and token now cached
    registry.canned.append((status, {"Retry-After": "7"}, make_problem(status, code)))
    started = time.monotonic()
    answered, headers, answer = call(running, "POST", "/v1/lookups", body)
    assert answered == status and answer["code"] == code
    assert headers["Retry-After"] == "7"
    assert len(registry.calls("/api/v1/lookups")) == 2  # no retry behind the caller's back
    assert time.monotonic() - started < 7


def test_it_retries_a_failure_without_retry_after_once(running, registry, make_problem):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    call(running, "POST", "/v1/lookups", body)
    registry.canned.append((502, {}, make_problem(502, "bad_gateway")))
    assert call(running, "POST", "/v1/lookups", body)[0] == 200
    registry.canned.extend([(502, {}, make_problem(502, "bad_gateway"))] * 2)
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 502 and answer["code"] == "registry_error"


def test_it_names_failures_the_caller_cannot_fix_as_502(registry, api_key):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    cases = [
        (Client(registry.url, "wrong-key", max_retries=0), "registry_unauthenticated"),
        (Client("http://127.0.0.1:9", api_key, max_retries=0), "registry_unreachable"),
    ]
    for client, code in cases:
        server, thread = _start(Gateway(client))
        try:
            status, _, answer = call(server.server_address[:2], "POST", "/v1/lookups", body)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        assert (status, answer["code"]) == (502, code)


def test_it_refuses_an_answer_whose_proof_does_not_verify(running, registry):
    registry.lying_sk = oprf.derive_key_pair(b"\x07" * 32, b"liar")[0]
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    status, _, answer = call(running, "POST", "/v1/lookups", body)
    assert status == 502 and answer["code"] == "invalid_proof"
    assert registry.calls("/api/v1/lookups") == []


# -------------------------------------------------------------------------------------------
# Cases
# -------------------------------------------------------------------------------------------


def _case(reference: str, *pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "reference": reference,
        "category": "identity_theft",
        "confirmed_at": "2026-10-01",
        "identifiers": _ids(*pairs),
        "attestation": True,
    }


def test_it_reports_a_case_from_raw_values_and_replays_by_idempotency_key(running, registry):
    case = _case("CASE-1", ("phone", "+86 138 1234 5678"), ("cn_resident_id", LISTED_ID))
    headers = {"Idempotency-Key": "case-1-key"}
    status, answer_headers, created = call(running, "POST", "/v1/cases", case, headers)
    assert status == 201 and "Idempotent-Replayed" not in answer_headers
    assert [i["fingerprint"] for i in created["identifiers"]] == [
        registry.token_of("phone", LISTED_PHONE)[:8],
        registry.token_of("cn_resident_id", LISTED_ID)[:8],
    ]
    sent = registry.calls("/api/v1/cases")[0]
    assert sent.headers["Idempotency-Key"] == "case-1-key"
    assert sent.body["identifiers"][0]["token"] == registry.token_of("phone", LISTED_PHONE)

    status, answer_headers, again = call(running, "POST", "/v1/cases", case, headers)
    assert status == 201 and answer_headers["Idempotent-Replayed"] == "true"
    assert again["id"] == created["id"]
    status, _, conflict = call(running, "POST", "/v1/cases", case)
    assert status == 409 and conflict["code"] == "conflict"


def test_it_refuses_a_case_with_any_bad_identifier_and_sends_nothing(running, registry):
    case = _case("CASE-2", ("phone", LISTED_PHONE), ("bank_card", "1234"))
    status, _, answer = call(running, "POST", "/v1/cases", case)
    assert status == 400
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(1, "invalid_bank_card")]
    assert registry.requests == []

    case = _case("call 13912345678", ("phone", LISTED_PHONE))
    status, _, answer = call(running, "POST", "/v1/cases", case)
    assert status == 400 and answer["code"] == "raw_pii_rejected"
    assert registry.calls("/api/v1/cases") == []


def test_it_reports_a_batch_with_one_result_per_case_in_order(running, registry):
    registry.cases["TAKEN"] = {"id": "x"}
    cases = [
        _case("B-0", ("phone", LISTED_PHONE)),
        _case("B-1", ("phone", "12345")),
        _case("TAKEN", ("email", "someone@example.com")),
        _case("B-3 13912345678", ("phone", "13912345678")),
        "not a case",
        _case("B-5", ("imei", "490154203237518"), ("phone", LISTED_PHONE)),
    ]
    status, _, answer = call(running, "POST", "/v1/cases/batch", {"cases": cases})
    assert status == 200
    results = answer["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "error",
        "error",
        "error",
        "created",
    ]
    assert results[1]["error"]["errors"][0]["pointer"] == "/cases/1/identifiers/0/value"
    assert results[2]["error"]["code"] == "conflict"
    assert results[3]["error"]["code"] == "raw_pii_rejected"
    assert results[3]["error"]["errors"][0]["pointer"] == "/cases/3/reference"
    (batch,) = registry.calls("/api/v1/cases/batch")
    assert [case["reference"] for case in batch.body["cases"]] == ["B-0", "TAKEN", "B-5"]
    assert len(registry.calls("/api/v1/oprf/evaluate")) == 1  # one evaluation per batch
    _assert_no_raw_value(registry.all_sent_text())
    _assert_nothing_leaks(json.dumps(answer), registry)


# -------------------------------------------------------------------------------------------
# Monitoring (the registry's endpoints are specified in spec/api.md; the fake implements them)
# -------------------------------------------------------------------------------------------


def test_it_watches_raw_identifiers_with_tokens_sent_and_none_returned(running, registry):
    body = {
        "purpose": "loan_monitoring",
        "label": "LOAN-2026-001",
        "consent_reference": "CONSENT-77",
        "identifiers": _ids(
            ("phone", LISTED_PHONE), ("phone", "000"), ("cn_resident_id", LISTED_ID)
        ),
    }
    status, _, answer = call(running, "POST", "/v1/watches", body)
    assert status == 201
    assert [w["index"] for w in answer["watches"]] == [0, 2]
    assert answer["errors"] == [{"index": 1, "code": "invalid_phone"}]
    assert answer["watches"][0]["fingerprint"] == registry.token_of("phone", LISTED_PHONE)[:8]
    sent = registry.calls("/api/v1/watches")[0].body
    assert sent["label"] == "LOAN-2026-001" and sent["purpose"] == "loan_monitoring"
    assert sent["identifiers"][1]["token"] == registry.token_of("cn_resident_id", LISTED_ID)
    _assert_nothing_leaks(json.dumps(answer), registry)

    status, _, refused = call(running, "POST", "/v1/watches", {**body, "purpose": "curiosity"})
    assert status == 400 and refused["errors"][0]["pointer"] == "/purpose"


def test_it_passes_alerts_through_with_its_own_next_links(running, registry):
    registry.alerts.extend(
        {
            "id": f"alert-{n}",
            "type": "case.reported",
            "created_at": "2026-12-01T09:00:00+08:00",
            "watch": {"id": "w", "label": "L", "kind": "phone", "fingerprint": "abcd1234"},
            "case": None,
            "velocity": None,
        }
        for n in range(3)
    )
    status, _, page = call(running, "GET", "/v1/alerts")
    assert status == 200
    assert [alert["id"] for alert in page["results"]] == ["alert-0", "alert-1"]
    assert page["next"] == "/v1/alerts?cursor=2"
    status, _, page = call(running, "GET", page["next"])
    assert [alert["id"] for alert in page["results"]] == ["alert-2"] and page["next"] is None
    status, _, page = call(running, "GET", "/v1/alerts?after=1&junk=x")
    assert [alert["id"] for alert in page["results"]] == ["alert-1", "alert-2"]
    assert registry.calls("/api/v1/alerts")[-1].path == "/api/v1/alerts?after=1"


# -------------------------------------------------------------------------------------------
# Custodians: the gateway fans out to t-of-n custodians and checks every proof
# -------------------------------------------------------------------------------------------


class _CustodianHandler(BaseHTTPRequestHandler):
    """A custodian: evaluates with its share of the fake registry's key, proves under its
    public share, and takes only this member's key at this custodian."""

    name: str
    share: bytes
    key_id: str
    seen: list[bytes]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(raw)
        if self.headers.get("Authorization") != f"Bearer key-at-{self.name}":
            self._send(401, {"code": "unauthenticated"})
            return
        elements = [oprf.parse_element_hex(e) for e in json.loads(raw)["blinded_elements"]]
        evaluated = oprf.blind_evaluate_many(self.share, elements)
        proof = oprf.generate_proof(self.share, oprf.public_share(self.share), elements, evaluated)
        answer = {
            "key_id": self.key_id,
            "evaluator": self.name,
            "evaluated_elements": [element.hex() for element in evaluated],
            "proof": proof.hex(),
        }
        self._send(200, answer)

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_it_tokenises_through_two_of_three_custodians_with_one_down(registry, api_key):
    shares = oprf.split_key(registry.sk, threshold=2, count=3)
    servers, evaluators, seen = [], [], []
    for index, share in shares:
        name = f"custodian-{index}"
        attributes = {"name": name, "share": share, "key_id": registry.key_id, "seen": seen}
        server = ThreadingHTTPServer(("127.0.0.1", 0), type(name, (_CustodianHandler,), attributes))
        if index == 3:  # stopped: nothing listens at its address
            url = "http://127.0.0.1:9"
            server.server_close()
        else:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
            servers.append(server)
        public = oprf.public_share(share).hex()
        evaluators.append({"id": name, "index": index, "url": url, "public_key": public})
    registry.custodians = (2, evaluators)
    registry.list_identifier("phone", LISTED_PHONE, "identity_theft")
    keys = {f"custodian-{index}": f"key-at-custodian-{index}" for index, _ in shares}
    client = _gateway_client(registry, api_key, custodian_keys=keys, custodian_timeout=2)
    server, thread = _start(Gateway(client))
    try:
        body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
        status, _, answer = call(server.server_address[:2], "POST", "/v1/lookups", body)
    finally:
        for running_server in (server, *servers):
            running_server.shutdown()
            running_server.server_close()
        thread.join(timeout=5)
    assert status == 200 and answer["results"][0]["matched"] is True
    assert registry.calls("/api/v1/oprf/evaluate") == []  # the registry holds no share
    assert len(seen) == 2
    _assert_no_raw_value(b"".join(seen).decode())


# -------------------------------------------------------------------------------------------
# Authentication and exposure
# -------------------------------------------------------------------------------------------


def test_it_refuses_to_listen_off_loopback_without_authentication(registry, api_key, monkeypatch):
    gateway = Gateway(_gateway_client(registry, api_key))
    with pytest.raises(StartupError):
        make_server(gateway, "0.0.0.0", 0)  # noqa: S104 - the refusal is the point
    with pytest.raises(StartupError):
        make_server(gateway, "127.0.0.1", 0, secret="short")  # noqa: S106
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.setenv("REGISTRY_API_KEY", api_key)
    monkeypatch.delenv("REGISTRY_GATEWAY_SECRET", raising=False)
    monkeypatch.delenv("REGISTRY_GATEWAY_SECRET_FILE", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == cli.EXIT_USAGE  # noqa: S104


@pytest.mark.parametrize("running", [{"secret": SECRET}], indirect=True)
def test_it_serves_only_callers_with_the_secret(running, registry):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET}):
        status, answer_headers, answer = call(running, "POST", "/v1/lookups", body, headers)
        assert status == 401 and answer["code"] == "unauthenticated"
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
        assert SECRET not in json.dumps(answer)
    assert registry.requests == []
    good = {"Authorization": f"Bearer {SECRET}", "Host": "gateway.lender.internal"}
    assert call(running, "POST", "/v1/lookups", body, good)[0] == 200
    assert call(running, "GET", "/healthz")[0] == 200  # health and the schema stay open
    assert call(running, "GET", "/openapi.json")[0] == 200


def test_it_refuses_browser_shaped_requests_without_a_secret(running, registry):
    body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
    status, _, answer = call(running, "POST", "/v1/lookups", body, {"Host": "evil.example:8088"})
    assert status == 403 and answer["code"] == "forbidden_host"
    status, _, answer = call(running, "POST", "/v1/lookups", body, {"Content-Type": "text/plain"})
    assert status == 415
    assert registry.requests == []
    assert call(running, "POST", "/v1/lookups", body, {"Host": "localhost:8088"})[0] == 200


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_it_serves_mtls_callers_off_loopback_without_a_secret(registry, api_key, tmp_path):
    ca, server_pem, client_pem = _certificates(tmp_path)
    context = server_ssl_context(str(server_pem[0]), str(server_pem[1]), str(ca[0]))
    gateway = Gateway(_gateway_client(registry, api_key))
    server, thread = _start(gateway, host="0.0.0.0", ssl_context=context)  # noqa: S104
    port = server.server_address[1]
    try:
        trusted = ssl.create_default_context(cafile=str(ca[0]))
        trusted.load_cert_chain(str(client_pem[0]), str(client_pem[1]))
        connection = http.client.HTTPSConnection("localhost", port, context=trusted, timeout=10)
        body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
        connection.request(
            "POST", "/v1/lookups", json.dumps(body), {"Content-Type": "application/json"}
        )
        assert connection.getresponse().status == 200
        connection.close()

        anonymous = ssl.create_default_context(cafile=str(ca[0]))
        connection = http.client.HTTPSConnection("localhost", port, context=anonymous, timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/v1/alerts")
            connection.getresponse()
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert len(registry.calls("/api/v1/lookups")) == 1


def _certificates(directory: Path) -> tuple[tuple[Path, Path], ...]:
    """A CA, a server certificate for localhost and a client certificate, by openssl."""

    def run(*args: str) -> None:
        subprocess.run(  # noqa: S603 - fixed arguments
            ["openssl", *args],  # noqa: S607
            cwd=directory,
            check=True,
            capture_output=True,
        )

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    for name, extension in (("server", "subjectAltName=DNS:localhost"), ("client", None)):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        extra = ["-extfile", f"{name}.ext"] if extension else []
        if extension:
            (directory / f"{name}.ext").write_text(extension + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            *extra,
        )
    pair = {n: (directory / f"{n}.pem", directory / f"{n}.key") for n in ("ca", "server", "client")}
    return pair["ca"], pair["server"], pair["client"]


# -------------------------------------------------------------------------------------------
# Bad input, schema, health
# -------------------------------------------------------------------------------------------


def test_it_answers_malformed_input_with_a_problem_never_a_500(running, registry):
    lookups = "/v1/lookups"
    answers = [
        call(running, "POST", lookups, raw=b"{not json"),
        call(running, "POST", lookups, raw=b"\xff\xfe"),
        call(running, "POST", lookups, raw=b"[" * 100_000 + b"]" * 100_000),
        call(running, "POST", lookups, []),
        call(running, "POST", lookups, {"purpose": "loan_application", "identifiers": "x"}),
        call(running, "POST", lookups, {"purpose": "loan_application", "identifiers": []}),
        call(
            running,
            "POST",
            lookups,
            {"purpose": "loan_application", "identifiers": _ids(*[("phone", "1")] * 1001)},
        ),
        call(running, "POST", "/v1/cases/batch", {"cases": [{}] * 501}),
        call(running, "POST", "/v1/cases", {"identifiers": [{"kind": "phone", "value": 5}]}),
        call(
            running,
            "POST",
            "/v1/cases",
            _case("C", ("phone", LISTED_PHONE)),
            {"Idempotency-Key": "bad key with spaces"},
        ),
        call(running, "GET", lookups),
        call(running, "DELETE", "/v1/alerts"),
        call(running, "GET", "/v1/lookups/13812345678"),
    ]
    statuses = [status for status, _, _ in answers]
    assert statuses == [400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 405, 405, 404]
    codes = [answer["code"] for _, _, answer in answers]
    assert codes[:3] == ["malformed_json"] * 3
    assert codes[6:8] == ["batch_too_large"] * 2
    assert answers[10][1]["Allow"] == "POST"
    assert registry.requests == []


def test_it_refuses_oversized_and_unframed_bodies(registry, api_key):
    gateway = Gateway(_gateway_client(registry, api_key))
    server, thread = _start(gateway, max_body=1000)
    address = server.server_address[:2]
    try:
        status, _, answer = call(address, "POST", "/v1/lookups", raw=b" " * 1001)
        assert (status, answer["code"]) == (413, "payload_too_large")
        with socket.create_connection(address, timeout=10) as raw:
            raw.sendall(b"GARBAGE / HTTP/9.9\r\n\r\n")
            reply = raw.recv(4096)
        assert b'"status": 505' in reply and b"GARBAGE" not in reply
        with socket.create_connection(address, timeout=10) as raw:
            raw.sendall(
                b"POST /v1/lookups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            assert raw.recv(4096).startswith(b"HTTP/1.1 411")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_it_describes_exactly_its_routes_in_openapi(running):
    status, _, document = call(running, "GET", "/openapi.json")
    assert status == 200 and document == openapi_document()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/v1/lookups",
        "/v1/cases",
        "/v1/cases/batch",
        "/v1/watches",
        "/v1/alerts",
        "/openapi.json",
        "/healthz",
    }
    assert call(running, "GET", "/healthz")[2] == {"status": "ok"}


# -------------------------------------------------------------------------------------------
# Cache and concurrency
# -------------------------------------------------------------------------------------------


def test_it_caches_tokens_in_a_bounded_lru_with_a_ttl_and_no_raw_values(registry, api_key):
    now = [0.0]
    client = Client(registry.url, api_key)
    cache = TokenCache(client, 2, ttl=10, clock=lambda: now[0])
    a, b, c = (("phone", canonicalize("phone", f"13{n}12345678")) for n in (9, 8, 7))

    def evaluations() -> int:
        return sum(len(r.body["blinded_elements"]) for r in registry.calls("/api/v1/oprf/evaluate"))

    first = cache.tokens_for([a, b])
    assert first[a] == registry.token_of("phone", "13912345678")
    assert evaluations() == 2
    cache.tokens_for([a])  # a hit, and now the most recently used
    cache.tokens_for([c])  # evicts b, the least recently used
    assert evaluations() == 3 and len(cache) == 2
    cache.tokens_for([a])
    assert evaluations() == 3
    cache.tokens_for([b])
    assert evaluations() == 4
    now[0] = 10.0  # a was made at 0: expired
    assert cache.tokens_for([a])[a] == first[a]
    assert evaluations() == 5
    assert LISTED_PHONE not in repr(cache._tokens) and a[1] not in repr(cache._tokens)


def test_it_serves_concurrent_callers_each_their_own_answer(running, registry):
    values = [f"139{n:08d}" for n in range(64)]
    for value in values[::4]:
        registry.list_identifier("phone", value, "money_mule")
    outcomes: dict[int, Any] = {}

    def caller(number: int) -> None:
        mine = values[number * 4 : number * 4 + 4]
        body = {"purpose": "loan_application", "identifiers": _ids(*[("phone", v) for v in mine])}
        for _ in range(3):
            status, _, answer = call(running, "POST", "/v1/lookups", body)
            outcomes.setdefault(number, []).append(
                (status, [r["matched"] for r in answer["results"]])
            )

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 16
    for answers in outcomes.values():
        assert answers == [(200, [True, False, False, False])] * 3
    # Each value was evaluated about once: later calls came from the cache.
    evaluated = sum(
        len(r.body["blinded_elements"]) for r in registry.calls("/api/v1/oprf/evaluate")
    )
    assert 64 <= evaluated < 64 * 3


# -------------------------------------------------------------------------------------------
# The real process: `registry-client serve`, its log and its answers
# -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_never_logs_or_echoes_a_raw_value_or_a_token(registry, api_key, tmp_path):
    registry.list_identifier("phone", LISTED_PHONE, "identity_theft")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    port = _free_port()
    key_file = tmp_path / "api-key"
    key_file.write_text(api_key + "\n")  # as systemd or a container hands it over
    env = {
        **{name: value for name, value in os.environ.items() if name != "REGISTRY_API_KEY"},
        "REGISTRY_URL": registry.url,
        "REGISTRY_API_KEY_FILE": str(key_file),
        "PYTHONPATH": os.pathsep.join([str(CLIENT_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "registry_client", "serve", "--port", str(port)]
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [*command, "--secret-file", str(secret_file)], env=env, stdout=log, stderr=log
        )
        try:
            answers = _exercise(("127.0.0.1", port))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    log_text = log_path.read_text()
    assert "listening on 127.0.0.1" in log_text and "auth: secret" in log_text
    assert "POST /v1/lookups 200" in log_text and "POST /v1/cases/batch 200" in log_text
    assert "GET - 404" in log_text  # an unknown path is not written down
    assert log_text.rstrip().endswith("stopped")
    assert SECRET not in log_text and SECRET not in answers
    assert api_key not in log_text
    _assert_nothing_leaks(log_text, registry)
    _assert_nothing_leaks(answers, registry)
    assert '"matched": true' in answers  # the calls did their work


def _exercise(address: tuple[str, int]) -> str:
    """Every kind of call, good and bad, carrying the raw values; returns all answers."""
    deadline = time.monotonic() + 20
    while True:
        try:
            call(address, "GET", "/healthz")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    auth = {"Authorization": f"Bearer {SECRET}"}
    every = _ids(*[(kind, value) for kind in ("phone", "cn_resident_id") for value in RAW_VALUES])
    calls = [
        ("POST", "/v1/lookups", {"purpose": "loan_application", "identifiers": every}),
        ("POST", "/v1/lookups", {"purpose": "loan_application", "identifiers": every[:1]}),
        (
            "POST",
            "/v1/lookups",
            {
                "purpose": "loan_application",
                "consent_reference": LISTED_PHONE,
                "identifiers": every[:2],
            },
        ),
        (
            "POST",
            "/v1/cases",
            _case("CASE-9", ("phone", LISTED_PHONE), ("cn_resident_id", LISTED_ID)),
        ),
        ("POST", "/v1/cases", _case("CASE-10", ("phone", "12345"))),
        ("POST", "/v1/cases", _case(f"ref {LISTED_ID}", ("phone", LISTED_PHONE))),
        (
            "POST",
            "/v1/cases/batch",
            {
                "cases": [
                    _case("CASE-11", ("phone", LISTED_PHONE)),
                    _case("CASE-12", ("imei", "12345")),
                ]
            },
        ),
        ("POST", "/v1/watches", {"purpose": "loan_monitoring", "identifiers": every}),
        ("GET", "/v1/alerts", None),
        ("GET", f"/v1/lookups/{LISTED_PHONE}?id={LISTED_ID}", None),
        ("POST", f"/{LISTED_PHONE}", {"value": LISTED_PHONE}),
    ]
    answers = [call(address, method, path, body, auth) for method, path, body in calls]
    answers.append(call(address, "POST", "/v1/lookups", {"identifiers": every}))  # no secret
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(f"GET /{LISTED_PHONE} HTTP/1.1 {LISTED_ID}\r\n\r\n".encode())
        answers.append((0, {}, raw.recv(4096).decode("latin-1")))
    return "\n".join(json.dumps([status, body], ensure_ascii=False) for status, _, body in answers)


def test_it_logs_one_line_per_request_in_process(running, registry, caplog):
    with caplog.at_level(logging.INFO, logger="registry_client.gateway"):
        body = {"purpose": "loan_application", "identifiers": _ids(("phone", LISTED_PHONE))}
        call(running, "POST", "/v1/lookups", body)
        call(running, "GET", f"/v1/nothing/{LISTED_PHONE}")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("POST /v1/lookups 200 ") and lines[0].endswith("ms")
    assert lines[1].startswith("GET - 404 ")
    _assert_nothing_leaks("\n".join(lines), registry)


# -------------------------------------------------------------------------------------------
# The README's examples: Java (java.net.http.HttpClient) and curl
# -------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK (11 or later)")
@pytest.mark.parametrize("running", [{"secret": SECRET}], indirect=True)
def test_it_answers_the_readme_java_example(running, registry):
    registry.list_identifier("phone", LISTED_PHONE, "identity_theft")
    env = {**os.environ, "REGISTRY_GATEWAY_URL": running.url, "REGISTRY_GATEWAY_SECRET": SECRET}
    result = subprocess.run(  # noqa: S603 - fixed arguments
        ["java", str(CLIENT_DIR / "examples" / "GatewayLookup.java")],  # noqa: S607
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.strip().partition(" ")
    answer = json.loads(body)
    assert status == "200"
    assert [(r["index"], r["matched"]) for r in answer["results"]] == [(0, True), (1, False)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_it_answers_the_readme_curl_example(running, registry):
    registry.list_identifier("phone", LISTED_PHONE, "identity_theft")
    body = json.dumps(
        {
            "purpose": "loan_application",
            "identifiers": [{"kind": "phone", "value": "138 1234 5678"}],
        }
    )
    command = ["curl", "-sS", "--fail-with-body", "-H", "Content-Type: application/json"]
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [*command, "--data-binary", "@-", f"{running.url}/v1/lookups"],
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"][0]["matched"] is True


# -------------------------------------------------------------------------------------------
# Packaging: the container image definition and the systemd unit
# -------------------------------------------------------------------------------------------


def test_it_ships_an_image_that_runs_the_gateway_as_a_user_with_its_secret_from_a_file():
    text = (CLIENT_DIR / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text.splitlines()
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user == ["gateway"]
    assert "EXPOSE 8088" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "REGISTRY_API_KEY_FILE=/run/secrets/" in text
    command = json.loads(text[text.index("CMD [") + 4 :].replace("\\\n", ""))
    assert command[:2] == ["registry-client", "serve"]
    args = cli.build_parser().parse_args(command[1:])
    assert (args.host, args.port) == ("0.0.0.0", 8088)  # noqa: S104 - inside the container
    assert args.secret_file == "/run/secrets/registry_gateway_secret"  # noqa: S105 - a path


def test_it_ships_a_hardened_systemd_unit_with_credentials_as_files(tmp_path):
    unit = (CLIENT_DIR / "registry-gateway.service").read_text()
    settings = [line.partition("=") for line in unit.splitlines() if "=" in line]
    values: dict[str, list[str]] = {}
    for name, _, value in settings:
        values.setdefault(name, []).append(value)
    for name, expected in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert values[name] == [expected], name
    assert "Environment=REGISTRY_GATEWAY_SECRET_FILE=%d/registry_gateway_secret" in unit
    assert "Environment=REGISTRY_API_KEY_FILE=%d/registry_api_key" in unit
    assert not any(
        v.startswith(("REGISTRY_API_KEY=", "REGISTRY_GATEWAY_SECRET="))
        for v in values["Environment"]
    )
    (exec_start,) = values["ExecStart"]
    command = exec_start.split()
    assert command[0].endswith("/registry-client") and command[1] == "serve"
    cli.build_parser().parse_args(command[1:])
    if shutil.which("systemd-analyze") is not None:
        venv_bin = Path(sys.executable).parent
        (tmp_path / "registry-gateway.service").write_text(
            unit.replace("/opt/registry-client/.venv/bin", str(venv_bin))
        )
        result = subprocess.run(  # noqa: S603 - fixed arguments
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / "registry-gateway.service")],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_it_keeps_a_keep_alive_connection_in_step_after_a_get_with_a_body(running, registry):
    connection = http.client.HTTPConnection(running.host, running.port, timeout=10)
    try:
        connection.request("GET", "/healthz", body=b'{"ignored": true}')
        assert connection.getresponse().read() == b'{"status": "ok"}'
        connection.request("GET", "/v1/alerts", body=b"x" * 100)
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["results"] == []
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_it_keeps_the_commands_retry_default_and_reads_the_key_from_a_file(
    registry, api_key, monkeypatch, tmp_path
):
    key_file = tmp_path / "key"
    key_file.write_text(api_key + "\n")
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.delenv("REGISTRY_API_KEY", raising=False)
    monkeypatch.setenv("REGISTRY_API_KEY_FILE", str(key_file))
    args = cli.build_parser().parse_args(["token", "--kind", "phone", LISTED_PHONE])
    client = cli._client_from(args)
    assert client.max_retries == 5 and client._api_key == api_key
    monkeypatch.setenv("REGISTRY_API_KEY_FILE", str(tmp_path / "missing"))
    assert cli.main(["token", "--kind", "phone", LISTED_PHONE]) == cli.EXIT_USAGE

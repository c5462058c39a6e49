"""The member gateway: ``registry-client serve``.

A small HTTP server that runs inside the member's network and speaks plain JSON with *raw*
identifiers, so that a member's systems in any language (most lenders' are Java) can use the
registry with one HTTP call: it does everything of contract v2 that a member must do itself
(canonical forms, VOPRF blinding, proof checks, custodian fan-out, finalisation) through
:class:`~registry_client.client.Client`, and answers like the registry, less the tokens.

Endpoints (``/openapi.json`` describes them): ``POST /v1/lookups``, ``POST /v1/cases``,
``POST /v1/cases/batch``, ``POST /v1/watches``, ``GET /v1/alerts``, ``GET /healthz``.

What it promises:

- Raw values and tokens never appear in an answer or a log line. Per-identifier results are
  given in request order with their ``index``; a value refused by canonicalisation is reported
  as ``{"index", "code"}``. A log line is the method, the route (never the path the caller
  sent), the status and the duration.
- Loopback by default. Bound to any other address it refuses to start without a shared secret
  (callers send ``Authorization: Bearer <secret>``, compared in constant time) or a TLS
  client-certificate authority (mTLS). Without a secret, only requests whose ``Host`` is a
  loopback name are served and POST bodies must be ``application/json``, so that a web page
  open in a browser on the same machine can neither post to it nor read it via DNS rebinding.
- A 429 or 503 from the registry is answered at once with the same status and its
  ``Retry-After`` (the gateway's client retries only failures that carry no ``Retry-After``,
  once), so that the caller's own scheduling decides when to come back.
- Tokens are cached in a bounded LRU with a time to live (:class:`~registry_client.bulk.
  TokenCache`), keyed by a keyed digest so the cache holds no raw value.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import __version__
from .bulk import TokenCache
from .canonical import KINDS, CanonicalizationError, canonicalize
from .client import Client, _checked_case
from .errors import (
    AuthenticationError,
    KeyMismatchError,
    NotEnoughEvaluatorsError,
    ProofError,
    RateLimitedError,
    RegistryError,
    ServiceUnavailableError,
    TransportError,
)
from .gateway_openapi import openapi_document

__all__ = ["Answer", "Gateway", "GatewayServer", "is_loopback_host", "make_server"]

logger = logging.getLogger("registry_client.gateway")

MAX_LOOKUP_IDENTIFIERS = 1000  # as the registry: one lookup id per call
MAX_WATCH_IDENTIFIERS = 1000
MAX_BATCH_CASES = 500
DEFAULT_MAX_BODY = 4 * 1024 * 1024
ALERT_QUERY = ("after", "cursor", "page_size")
_TOKEN_RUN = re.compile(r"[0-9a-f]{128}")
_POINTER = re.compile(r"^(/cases/(\d+))?(/identifiers/(\d+))?(/token)?(.*)$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    411: "Length required",
    413: "Payload too large",
    414: "Request line too long",
    415: "Unsupported media type",
    429: "Rate limited",
    431: "Request headers too large",
    500: "Internal error",
    501: "Not implemented",
    502: "Bad gateway",
    503: "Service unavailable",
    505: "HTTP version not supported",
}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def problem(status: int, code: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document like the registry's; ``detail`` never holds input."""
    title = _TITLES.get(status, "Error")
    document = {"type": "about:blank", "title": title, "status": status, "code": code}
    document["detail"] = detail or title
    document.update(extra)
    return document


class _Refusal(Exception):
    """Bad input found by the gateway itself: answered as it is, nothing sent."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _refusal(status: int, code: str, pointer: str | None = None) -> _Refusal:
    errors = [{"pointer": pointer, "code": code, "detail": code}] if pointer else []
    return _Refusal(Answer(status, problem(status, code, errors=errors)))


@dataclass
class _Canonical:
    """The identifiers of one request: what can be sent, and what was refused."""

    items: list[tuple[int, str, str]]  # (request index, kind, canonical)
    errors: list[dict[str, Any]]  # {"index", "code"}


def canonical_identifiers(raw: object, pointer: str, limit: int) -> _Canonical:
    """Check and canonicalise ``[{"kind", "value"}, ...]``; a refused value costs its own
    entry only, and its value appears nowhere (not in the error, not in a log)."""
    if not isinstance(raw, list) or not raw:
        raise _refusal(400, "validation_error", pointer)
    if len(raw) > limit:
        raise _refusal(400, "batch_too_large", pointer)
    items: list[tuple[int, str, str]] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        if kind not in KINDS:
            errors.append({"index": index, "code": "unknown_kind"})
        elif not isinstance(value, str):
            errors.append({"index": index, "code": "invalid_value"})
        else:
            try:
                items.append((index, kind, canonicalize(kind, value)))
            except CanonicalizationError as error:
                errors.append({"index": index, "code": error.code})
    return _Canonical(items, errors)


def _errors_problem(errors: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """400 for a request none of whose identifiers can be sent (or a case with a bad one)."""
    listed = [
        {
            "index": error["index"],
            "pointer": f"{prefix}/identifiers/{error['index']}/value",
            "code": error["code"],
            "detail": error["code"],
        }
        for error in errors
    ]
    detail = "identifiers refused by canonicalisation"
    return problem(400, "validation_error", detail, errors=listed)


def scrub(value: Any) -> Any:
    """What the registry answered, with every ``token`` field dropped and any token-shaped
    string masked: the gateway's answers never carry a token, whatever the registry sends."""
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items() if key != "token"}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str) and len(value) >= 128:
        return _TOKEN_RUN.sub("[token]", value)
    return value


def remap_pointer(
    pointer: object,
    identifiers: Sequence[int] | None = None,
    cases: Sequence[int] | None = None,
) -> object:
    """A registry pointer in the caller's terms: ``/identifiers/3/token`` of the request the
    gateway sent becomes ``/identifiers/<caller's index>/value``."""
    if not isinstance(pointer, str):
        return pointer
    match = _POINTER.match(pointer)
    if match is None:  # pragma: no cover - the pattern matches every string
        return pointer
    case_part, case_number, identifier_part, identifier_number, token, rest = match.groups()
    text = ""
    if case_part:
        number = int(case_number)
        text += f"/cases/{cases[number] if cases and number < len(cases) else number}"
    if identifier_part:
        number = int(identifier_number)
        mapped = identifiers[number] if identifiers and number < len(identifiers) else number
        text += f"/identifiers/{mapped}"
    if token:
        text += "/value"
    return text + rest


def _remapped_problem(
    document: Mapping[str, Any],
    identifiers: Sequence[int] | None = None,
    cases: Sequence[int] | None = None,
) -> dict[str, Any]:
    result = scrub(dict(document))
    errors = result.get("errors")
    if isinstance(errors, list):
        result["errors"] = [
            {**item, "pointer": remap_pointer(item.get("pointer"), identifiers, cases)}
            if isinstance(item, dict)
            else item
            for item in errors
        ]
    return result


def answer_for_registry_error(
    error: RegistryError,
    identifiers: Sequence[int] | None = None,
    cases: Sequence[int] | None = None,
) -> Answer:
    """How a failure upstream reaches the caller.

    429 and 503 keep their status and ``Retry-After``; the registry's 4xx keep theirs (with
    pointers in the caller's terms); what the caller cannot fix by changing its request (the
    gateway's own API key refused, the registry or custodians unreachable, a proof that does
    not verify, another key) is a 502 with a code saying which.
    """
    if isinstance(error, (RateLimitedError, ServiceUnavailableError)):
        status = 429 if isinstance(error, RateLimitedError) else 503
        body = _remapped_problem(error.problem or problem(status, error.code))
        wait = error.retry_after if error.retry_after is not None else 1.0
        return Answer(status, body, {"Retry-After": str(max(0, math.ceil(wait)))})
    if isinstance(error, AuthenticationError):
        detail = "the registry refused the gateway's API key"
        return Answer(502, problem(502, "registry_unauthenticated", detail))
    if isinstance(error, TransportError):
        return Answer(502, problem(502, "registry_unreachable", "no answer from the registry"))
    if isinstance(error, (NotEnoughEvaluatorsError, ProofError, KeyMismatchError)):
        return Answer(502, problem(502, error.code, str(error)[:300]))
    if error.status is None:
        if error.problem:  # refused by the client before sending (e.g. raw_pii_rejected)
            body = _remapped_problem(error.problem, identifiers, cases)
            body.update(status=400, title=_TITLES[400])
            return Answer(400, body)
        return Answer(502, problem(502, error.code, "unexpected answer from the registry"))
    if 400 <= error.status < 500:
        body = error.problem or problem(error.status, error.code)
        return Answer(error.status, _remapped_problem(body, identifiers, cases))
    return Answer(502, problem(502, "registry_error", f"the registry answered {error.status}"))


class Gateway:
    """The gateway's work, apart from HTTP: one method per endpoint, JSON in, :class:`Answer`
    out. Thread-safe: the client and the token cache are shared by all callers."""

    def __init__(self, client: Client, cache: TokenCache | None = None) -> None:
        self.client = client
        self.cache = cache if cache is not None else TokenCache(client, 100_000, ttl=3600)

    def _tokens(self, items: Sequence[tuple[int, str, str]]) -> list[str]:
        found = self.cache.tokens_for((kind, canonical) for _, kind, canonical in items)
        return [found[(kind, canonical)] for _, kind, canonical in items]

    # -- lookups ---------------------------------------------------------------------------

    def lookups(self, body: Any) -> Answer:
        request = _object(body)
        checked = canonical_identifiers(
            request.get("identifiers"), "/identifiers", MAX_LOOKUP_IDENTIFIERS
        )
        if not checked.items:
            return Answer(400, _errors_problem(checked.errors))
        purpose, consent = request.get("purpose"), request.get("consent_reference")
        if consent is not None and not isinstance(consent, str):
            raise _refusal(400, "validation_error", "/consent_reference")
        indices = [index for index, _, _ in checked.items]
        try:
            tokens = self._tokens(checked.items)
            identifiers = [
                {"kind": kind, "token": token}
                for (_, kind, _), token in zip(checked.items, tokens, strict=True)
            ]
            answer = self.client.lookup(identifiers, purpose, consent)  # type: ignore[arg-type]
        except RegistryError as error:
            return answer_for_registry_error(error, indices)
        results = [
            {"index": index, **scrub(result)}
            for index, result in zip(indices, answer["results"], strict=True)
        ]
        lookup_id = answer["lookup_ids"][0] if answer["lookup_ids"] else None
        return Answer(200, {"lookup_id": lookup_id, "results": results, "errors": checked.errors})

    # -- cases -----------------------------------------------------------------------------

    @staticmethod
    def _case_identifiers(raw: Any) -> _Canonical:
        """A case's identifiers, canonical; any refused value refuses the whole case (a case
        is evidence about one person: it is not filed with an identifier left out)."""
        if not isinstance(raw, dict):
            raise _refusal(400, "validation_error", "/")
        checked = canonical_identifiers(raw.get("identifiers"), "/identifiers", 20)
        if checked.errors:
            raise _Refusal(Answer(400, _errors_problem(checked.errors)))
        return checked

    @staticmethod
    def _case_body(raw: dict[str, Any], checked: _Canonical, tokens: Mapping) -> dict[str, Any]:
        """The registry's case body, tokens in place of values; the client's screens run on
        it (a raw identifier in the reference is refused here, never sent)."""
        body = {name: value for name, value in raw.items() if name != "identifiers"}
        body["identifiers"] = [
            {"kind": kind, "token": tokens[(kind, canonical)]}
            for _, kind, canonical in checked.items
        ]
        return _checked_case(body, "")

    def case(self, body: Any, idempotency_key: str | None) -> Answer:
        raw = _object(body)
        checked = self._case_identifiers(raw)
        try:
            tokens = self.cache.tokens_for((kind, value) for _, kind, value in checked.items)
            case_body = self._case_body(raw, checked, tokens)
            headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
            created, answer_headers = self.client._request_full(
                "POST", self.client.base_url + "/api/v1/cases", case_body, headers=headers
            )
        except RegistryError as error:
            return answer_for_registry_error(error)
        replayed = str(answer_headers.get("Idempotent-Replayed", "")).lower() == "true"
        return Answer(201, scrub(created), {"Idempotent-Replayed": "true"} if replayed else {})

    def cases_batch(self, body: Any, idempotency_key: str | None) -> Answer:
        raw_cases = _object(body).get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            raise _refusal(400, "validation_error", "/cases")
        if len(raw_cases) > MAX_BATCH_CASES:
            raise _refusal(400, "batch_too_large", "/cases")
        results: dict[int, dict[str, Any]] = {}
        checked: list[tuple[int, dict[str, Any], _Canonical]] = []
        for index, raw in enumerate(raw_cases):
            try:
                checked.append((index, raw, self._case_identifiers(raw)))
            except _Refusal as refusal:
                results[index] = _case_error(index, _prefixed(refusal.answer.body, index))
        sendable: list[tuple[int, dict[str, Any]]] = []
        try:
            # One evaluation for the whole batch (only values not cached are evaluated).
            tokens = self.cache.tokens_for(
                (kind, value) for _, _, case in checked for _, kind, value in case.items
            )
            for index, raw, case in checked:
                try:
                    sendable.append((index, self._case_body(raw, case, tokens)))
                except RegistryError as error:  # refused by the client's screens
                    refused = answer_for_registry_error(error).body
                    results[index] = _case_error(index, _prefixed(refused, index))
            if sendable:
                sent = self.client.submit_cases(
                    [case for _, case in sendable], idempotency_key=idempotency_key
                )
                for (index, _), result in zip(sendable, sent, strict=True):
                    results[index] = {**scrub(result), "index": index}
        except RegistryError as error:
            return answer_for_registry_error(error, cases=[index for index, _ in sendable])
        return Answer(200, {"results": [results[index] for index in range(len(raw_cases))]})

    # -- monitoring ------------------------------------------------------------------------

    def watches(self, body: Any) -> Answer:
        request = _object(body)
        checked = canonical_identifiers(
            request.get("identifiers"), "/identifiers", MAX_WATCH_IDENTIFIERS
        )
        if not checked.items:
            return Answer(400, _errors_problem(checked.errors))
        options = {}
        for name in ("consent_reference", "label", "expires_on"):
            value = request.get(name)
            if value is not None and not isinstance(value, str):
                raise _refusal(400, "validation_error", "/" + name)
            options[name] = value
        indices = [index for index, _, _ in checked.items]
        try:
            tokens = self._tokens(checked.items)
            identifiers = [
                {"kind": kind, "token": token}
                for (_, kind, _), token in zip(checked.items, tokens, strict=True)
            ]
            consent = options.pop("consent_reference")
            answered = self.client.watch(identifiers, request.get("purpose"), consent, **options)  # type: ignore[arg-type]
        except RegistryError as error:
            return answer_for_registry_error(error, indices)
        watches = [
            {"index": index, **scrub(watch)} for index, watch in zip(indices, answered, strict=True)
        ]
        return Answer(201, {"watches": watches, "errors": checked.errors})

    def alerts(self, query: Mapping[str, str]) -> Answer:
        try:
            page = self.client.alerts_page({k: v for k, v in query.items() if k in ALERT_QUERY})
        except RegistryError as error:
            return answer_for_registry_error(error)
        page = scrub(page)
        for name in ("next", "previous"):
            if name in page:
                page[name] = _gateway_link(page[name])
        return Answer(200, page)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _refusal(400, "validation_error", "/")
    return body


def _prefixed(document: dict[str, Any], index: int) -> dict[str, Any]:
    """A case's problem with pointers from the batch's root (``/cases/<index>/...``)."""
    errors = document.get("errors")
    if isinstance(errors, list):
        document = dict(document)
        document["errors"] = [
            {**item, "pointer": f"/cases/{index}{item.get('pointer') or ''}"}
            if isinstance(item, dict)
            else item
            for item in errors
        ]
    return document


def _case_error(index: int, body: Any) -> dict[str, Any]:
    return {"index": index, "status": "error", "error": body}


def _gateway_link(link: object) -> str | None:
    """A registry ``next``/``previous`` link as the gateway's own: same query, our path."""
    if not isinstance(link, str) or not link:
        return None
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)
    kept = [(name, value) for name, value in query if name in ALERT_QUERY]
    return "/v1/alerts" + ("?" + urllib.parse.urlencode(kept) if kept else "")


# -------------------------------------------------------------------------------------------
# HTTP
# -------------------------------------------------------------------------------------------

_ROUTES: dict[str, dict[str, str]] = {
    "/v1/lookups": {"POST": "lookups"},
    "/v1/cases": {"POST": "case"},
    "/v1/cases/batch": {"POST": "cases_batch"},
    "/v1/watches": {"POST": "watches"},
    "/v1/alerts": {"GET": "alerts"},
    "/openapi.json": {"GET": "openapi"},
    "/healthz": {"GET": "healthz"},
}
_OPEN = frozenset({"/healthz", "/openapi.json"})  # served without the secret
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"  # keep-alive: Java's HttpClient and curl reuse connections
    server_version = f"registry-gateway/{__version__}"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True

    # Nothing BaseHTTPRequestHandler would log (request lines, error messages that quote the
    # request) is logged: one line per request, written by _finish.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def log_request(self, code: object = "-", size: object = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Used by the base class for malformed requests; its messages quote the request line,
        # so they are replaced by a fixed problem document.
        self.close_connection = True
        self._started = getattr(self, "_started", time.monotonic())
        self._respond(Answer(code, problem(code, "bad_request" if code == 400 else "http_error")))

    def handle_one_request(self) -> None:
        self._started = time.monotonic()
        self._route = "-"
        super().handle_one_request()

    def _dispatch(self) -> None:
        """Every method goes through here: unknown ones are answered 405 or 404."""
        try:
            self._respond(self._answer())
        except Exception as error:  # noqa: BLE001 - never a traceback to the caller or log
            logger.error("internal error: %s", type(error).__name__)
            self.close_connection = True
            self._respond(Answer(500, problem(500, "internal_error")))

    def _answer(self) -> Answer:
        split = urllib.parse.urlsplit(self.path)
        methods = _ROUTES.get(split.path)
        if methods is None:
            self._discard_body()
            return Answer(404, problem(404, "not_found"))
        self._route = split.path
        handler_name = methods.get(self.command)
        if handler_name is None:
            self._discard_body()
            return Answer(
                405, problem(405, "method_not_allowed"), {"Allow": ", ".join(sorted(methods))}
            )
        if split.path not in _OPEN:
            refused = self._refuse_caller()
            if refused is not None:
                self._discard_body()
                return refused
        try:
            if self.command == "POST":
                body = self._read_json()
            else:
                body = None
                self._discard_body()  # keeps a keep-alive connection in step
            return self._call(handler_name, body, split.query)
        except _Refusal as refusal:
            return refusal.answer

    def _call(self, name: str, body: Any, query: str) -> Answer:
        gateway = self.server.gateway
        if name == "healthz":
            return Answer(200, {"status": "ok"})
        if name == "openapi":
            return Answer(200, openapi_document())
        if not self.server.slots.acquire(timeout=self.server.slot_wait):
            return Answer(503, problem(503, "gateway_busy"), {"Retry-After": "1"})
        try:
            if name == "alerts":
                return gateway.alerts(dict(urllib.parse.parse_qsl(query)))
            if name in ("case", "cases_batch"):
                return getattr(gateway, name)(body, self._idempotency_key())
            return getattr(gateway, name)(body)
        finally:
            self.server.slots.release()

    def _refuse_caller(self) -> Answer | None:
        secret = self.server.secret
        if secret is None:
            if self.server.require_client_cert:
                return None  # the TLS handshake authenticated the caller
            # No secret: only a loopback Host (DNS rebinding) and only JSON bodies (a browser
            # cannot send application/json cross-origin without a preflight we never allow).
            host = urllib.parse.urlsplit("//" + (self.headers.get("Host") or "")).hostname
            if not host or not is_loopback_host(host):
                return Answer(403, problem(403, "forbidden_host"))
            return None
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), secret
        ):
            headers = {"WWW-Authenticate": 'Bearer realm="registry-gateway"'}
            return Answer(401, problem(401, "unauthenticated", "missing or wrong secret"), headers)
        return None

    def _idempotency_key(self) -> str | None:
        key = self.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise _refusal(400, "validation_error", "/headers/Idempotency-Key")
        return key

    def _read_json(self) -> Any:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _refusal(411, "length_required")
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self.close_connection = True
            raise _refusal(411, "length_required") from None
        if length < 0 or length > self.server.max_body:
            self.close_connection = True  # the body is not read: the connection cannot go on
            raise _refusal(413, "payload_too_large")
        raw = self.rfile.read(length)
        if media_type != "application/json":
            raise _refusal(415, "unsupported_media_type")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _refusal(400, "malformed_json") from None

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if self.headers.get("Transfer-Encoding") or not 0 <= length <= self.server.max_body:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _respond(self, answer: Answer) -> None:
        payload = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        content_type = "application/problem+json" if answer.status >= 400 else "application/json"
        # Logged before the answer leaves, so that the log is complete once a caller has it.
        method = self.command if self.command in _METHODS else "-"
        elapsed = (time.monotonic() - self._started) * 1000
        logger.info("%s %s %d %.1fms", method, self._route, answer.status, elapsed)
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write: two small writes on a keep-alive connection meet the
        # caller's delayed ACK (Nagle), tens of milliseconds per answer.
        if not hasattr(self, "_headers_buffer"):  # an HTTP/0.9 answer: no head at all
            self._headers_buffer = []
        else:
            self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(payload)
        self.flush_headers()


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)


class GatewayServer(ThreadingHTTPServer):
    """One thread per connection; at most ``max_concurrency`` requests at the registry at
    once (the others wait up to ``slot_wait`` seconds, then get 503 with ``Retry-After``)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        *,
        secret: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_concurrency: int = 32,
        slot_wait: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.gateway = gateway
        self.secret = secret.encode("utf-8") if secret else None
        self.max_body = max_body
        self.slots = threading.BoundedSemaphore(max(1, max_concurrency))
        self.slot_wait = slot_wait
        self.require_client_cert = bool(
            ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
        )
        super().__init__(address, _Handler)
        if ssl_context is not None:
            # The handshake happens in the connection's own thread, on its first read.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The base class prints a traceback; a TLS or connection failure is one short line.
        logger.warning("connection closed on error")


class StartupError(Exception):
    """The gateway refuses to start (e.g. exposed without authentication)."""


MIN_SECRET_LENGTH = 16


def make_server(
    gateway: Gateway,
    host: str = "127.0.0.1",
    port: int = 8088,
    *,
    secret: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **options: Any,
) -> GatewayServer:
    """A server ready to ``serve_forever``. Bound anywhere but loopback it must authenticate
    its callers: a shared secret, or mTLS (``ssl_context`` requiring client certificates)."""
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise StartupError(f"the gateway secret must be at least {MIN_SECRET_LENGTH} characters")
    mtls = ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
    if not is_loopback_host(host) and secret is None and not mtls:
        raise StartupError(
            "refusing to listen on a non-loopback address without authentication: set "
            "REGISTRY_GATEWAY_SECRET (or --secret-file), or use --tls-client-ca"
        )
    return GatewayServer((host, port), gateway, secret=secret, ssl_context=ssl_context, **options)


def server_ssl_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """TLS for the gateway's listener; with ``client_ca``, callers must present a certificate
    signed by it (mTLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context

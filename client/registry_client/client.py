"""HTTP client for the registry's REST API, version 1 (spec/api.md), on the standard library.

Raw identifiers stay in this process: :meth:`Client.tokens` canonicalises and blinds them here,
sends only blinded elements to the evaluators named by ``/api/v1/oprf/keys`` (the registry, or
its t-of-n custodians), checks each answer's proof, and finalizes the answers into tokens.
Every other call carries tokens and the member's own words, and those words are screened for
raw identifiers before they leave (the registry would refuse them with ``raw_pii_rejected``).

Retries: 429, 502, 503, 504 and connection failures are retried with exponential backoff and
jitter, waiting at least as long as the registry's ``Retry-After`` says. Requests that create
something carry an ``Idempotency-Key`` so that a retry never creates it twice.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from . import __version__, oprf
from .canonical import KINDS, CanonicalizationError, canonicalize
from .errors import (
    RateLimitedError,
    RegistryError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
    error_for_problem,
)
from .evaluators import Evaluator, KeyDocument, evaluate_verified
from .pii import looks_like_raw_identifier

__all__ = ["CASE_BATCH", "EVALUATE_BATCH", "LOOKUP_BATCH", "WATCH_BATCH", "Client", "is_token"]

EVALUATE_BATCH = 1000  # blinded elements per /oprf/evaluate call
LOOKUP_BATCH = 1000  # identifiers per /lookups call
WATCH_BATCH = 1000  # identifiers per /watches call
CASE_BATCH = 500  # cases per /cases/batch call

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_TOKEN = re.compile(r"[0-9a-f]{128}")


def is_token(value: object) -> bool:
    """True for a well-formed token: 128 lower-case hex characters."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: urllib would replay the Authorization header to the new host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class _Retry(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, error: RegistryError, retry_after: float | None) -> None:
        super().__init__(error.code)
        self.error = error
        self.retry_after = retry_after


class Client:
    """A member's (or compliance officer's) connection to the registry.

    >>> client = Client("https://registry.example", api_key)      # doctest: +SKIP
    >>> token = client.token("phone", "138 1234 5678")             # doctest: +SKIP
    >>> client.lookup([{"kind": "phone", "token": token}], purpose="loan_application")
    ... # doctest: +SKIP

    ``key_id`` pins the registry's OPRF key; without it the client pins the first key it sees
    and raises :class:`KeyMismatchError` if the registry later answers with another one.
    ``custodian_keys`` maps each custodian's evaluator id to this member's API key at that
    custodian (needed only where custodians hold the key); ``custodian_timeout`` bounds each
    custodian call, after which that custodian counts as down.
    ``sleep`` is only there so that tests can observe the backoff without waiting.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        max_retries: int = 5,
        key_id: str | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        allow_insecure_http: bool = False,
        custodian_keys: Mapping[str, str] | None = None,
        custodian_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = _checked_base_url(base_url, allow_insecure_http)
        if not api_key or any(char.isspace() for char in api_key):
            raise ValueError("api_key must be a non-empty string without white space")
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.key_id = key_id
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._allow_insecure_http = allow_insecure_http
        self._custodian_keys = dict(custodian_keys or {})
        self.custodian_timeout = custodian_timeout
        self._key_document: KeyDocument | None = None
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._user_agent = f"registry-client/{__version__} (python-urllib)"

    def __repr__(self) -> str:  # the API key stays out of reprs and tracebacks
        return f"Client({self.base_url!r}, key_id={self.key_id!r})"

    # ---------------------------------------------------------------------------------------
    # Tokens
    # ---------------------------------------------------------------------------------------

    def token(self, kind: str, value: str) -> str:
        """Token of one raw identifier (canonicalised, blinded, evaluated, finalized)."""
        return self.tokens(kind, [value])[0]

    def tokens(self, kind: str, values: Iterable[str]) -> list[str]:
        """Tokens of raw identifiers of one kind, in order.

        Raises :class:`~registry_client.canonical.CanonicalizationError` for the first invalid
        value, with ``.index`` set to its position (the value itself is not in the error).
        """
        items: list[tuple[str, str]] = []
        for index, value in enumerate(values):
            try:
                items.append((kind, canonicalize(kind, value)))
            except CanonicalizationError as error:
                error.index = index
                raise
        return self.tokenize_canonical(items)

    def tokenize_canonical(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """Tokens of already canonical ``(kind, canonical)`` pairs, any kinds mixed."""
        tokens: list[str] = []
        for start in range(0, len(items), EVALUATE_BATCH):
            tokens.extend(self._tokenize_batch(items[start : start + EVALUATE_BATCH]))
        return tokens

    def _tokenize_batch(self, items: Sequence[tuple[str, str]]) -> list[str]:
        inputs = [oprf.oprf_input(kind, canonical) for kind, canonical in items]
        blinded = [oprf.blind(private_input) for private_input in inputs]
        answer = self.evaluate([element for _, element in blinded])
        return [
            oprf.token_hex(oprf.finalize(private_input, blind, evaluated))
            for private_input, (blind, _), evaluated in zip(inputs, blinded, answer, strict=True)
        ]

    def evaluate(self, blinded_elements: Sequence[bytes]) -> list[bytes]:
        """Blinded elements in, evaluated elements under the consortium's key out: from the
        registry, or combined from t custodians; every answer's proof checked first."""
        return evaluate_verified(self.key_document(), blinded_elements, self._evaluate_at)

    def key_document(self) -> KeyDocument:
        """The published key (``/api/v1/oprf/keys``), read once and checked against the pin."""
        if self._key_document is None:
            document = KeyDocument.parse(self._request("GET", "/api/v1/oprf/keys"), self.key_id)
            self.key_id = document.key_id
            self._key_document = document
        return self._key_document

    def _evaluate_at(self, evaluator: Evaluator, elements: list[str]) -> Any:
        body = {"blinded_elements": elements}
        if evaluator.index == 0:  # the registry itself, with the member's registry key
            return self._request("POST", "/api/v1/oprf/evaluate", body)
        api_key = self._custodian_keys.get(evaluator.id)
        if not api_key:
            raise RegistryError(code="no_custodian_key")
        url = _checked_base_url(evaluator.url, self._allow_insecure_http)
        # One attempt, bounded: a custodian that is down or slow is simply not counted, and
        # the other custodians make up the threshold.
        try:
            return self._send_once(
                "POST",
                url + "/api/v1/oprf/evaluate",
                json.dumps(body).encode("utf-8"),
                {"Authorization": f"Bearer {api_key}"},
                timeout=self.custodian_timeout,
            )[0]
        except _Retry as retry:
            raise retry.error from None

    # ---------------------------------------------------------------------------------------
    # Lookups
    # ---------------------------------------------------------------------------------------

    def lookup(
        self,
        identifiers: Sequence[Mapping[str, str]],
        purpose: str,
        consent_reference: str | None = None,
    ) -> dict[str, Any]:
        """Look tokens up; returns ``{"lookup_ids": [...], "results": [...]}``.

        ``identifiers`` are ``{"kind", "token"}`` dicts; more than 1000 are sent in several
        calls (one lookup id each) and the results concatenated in order.
        """
        checked = [_checked_identifier(item, index) for index, item in enumerate(identifiers)]
        if not checked:
            raise _local_error("validation_error", "/identifiers")
        _screen_text("/consent_reference", consent_reference)
        lookup_ids: list[str] = []
        results: list[dict[str, Any]] = []
        for start in range(0, len(checked), LOOKUP_BATCH):
            body: dict[str, Any] = {
                "purpose": purpose,
                "identifiers": checked[start : start + LOOKUP_BATCH],
            }
            if consent_reference is not None:
                body["consent_reference"] = consent_reference
            answer = self._request("POST", "/api/v1/lookups", body)
            batch_results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(batch_results, list) or len(batch_results) != len(
                body["identifiers"]
            ):
                raise RegistryError(code="invalid_response")
            lookup_ids.append(str(answer.get("lookup_id", "")))
            results.extend(batch_results)
        return {"lookup_ids": lookup_ids, "results": results}

    # ---------------------------------------------------------------------------------------
    # Monitoring
    # ---------------------------------------------------------------------------------------

    def alerts_page(self, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One page of the member's alerts, oldest first (``GET /api/v1/alerts``); ``query``
        holds ``after`` (or the ``cursor`` of a ``next`` link) and ``page_size``."""
        params = {name: str(value) for name, value in (query or {}).items() if value is not None}
        path = "/api/v1/alerts" + ("?" + urllib.parse.urlencode(params) if params else "")
        page = self._request("GET", path)
        if not isinstance(page, dict):
            raise RegistryError(code="invalid_response")
        return page

    # ---------------------------------------------------------------------------------------
    # Cases
    # ---------------------------------------------------------------------------------------

    def submit_case(
        self, case: Mapping[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Report one case; returns the created case. A random idempotency key is used when
        none is given, which still makes this call's own retries safe."""
        body = _checked_case(case, "")
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return self._request("POST", "/api/v1/cases", body, headers=headers)

    def submit_cases(
        self, cases: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Report cases in batches of 500; returns one result per case, ``index`` global.

        With ``idempotency_key``, batch *n* (from 0) of several is sent with key
        ``"<key>-<n>"`` and a single batch with the key itself. Each result carries
        ``replayed: true`` when the registry answered a repeated key with its first answer
        (``Idempotent-Replayed: true`` header), i.e. nothing new was created.
        """
        bodies = [_checked_case(case, f"/cases/{index}") for index, case in enumerate(cases)]
        batches = [
            bodies[start : start + CASE_BATCH] for start in range(0, len(bodies), CASE_BATCH)
        ]
        results: list[dict[str, Any]] = []
        for number, batch in enumerate(batches):
            key = _batch_key(idempotency_key, number, len(batches))
            answer, headers = self._request_full(
                "POST",
                self.base_url + "/api/v1/cases/batch",
                {"cases": batch},
                headers={"Idempotency-Key": key},
            )
            replayed = _is_replay(headers)
            batch_results = answer.get("results") if isinstance(answer, dict) else answer
            if not isinstance(batch_results, list) or len(batch_results) != len(batch):
                raise RegistryError(code="invalid_response")
            offset = number * CASE_BATCH
            for position, result in enumerate(batch_results):
                result = dict(result) if isinstance(result, dict) else {"status": "error"}
                result["index"] = offset + position
                result["replayed"] = replayed
                results.append(result)
        return results

    def list_cases(
        self,
        *,
        status: str | None = None,
        category: str | None = None,
        reference: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The member's own cases, newest first, following the cursor pages lazily."""
        _screen_text("/reference", reference)
        query = {"status": status, "category": category, "reference": reference}
        return self._paginate("/api/v1/cases", query)

    def get_case(self, case_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/cases/{_path_id(case_id)}")

    def withdraw_case(self, case_id: str, reason: str) -> dict[str, Any]:
        """Withdraw one of the member's own cases; its identifiers are purged at once."""
        _screen_text("/reason", reason)
        path = f"/api/v1/cases/{_path_id(case_id)}/withdraw"
        return self._request("POST", path, {"reason": reason})

    # ---------------------------------------------------------------------------------------
    # Disputes
    # ---------------------------------------------------------------------------------------

    def file_dispute(
        self, case_id: str, identifier: Mapping[str, str], reason: str, statement: str = ""
    ) -> dict[str, Any]:
        """File a data subject's dispute against a case (``reason``: not_me, identity_stolen,
        inaccurate, resolved, other). ``identifier`` is ``{"kind", "token"}`` of one of the
        case's identifiers, as the data subject gave it (e.g. ``{"kind": "phone", "token":
        client.token("phone", value)}``): the registry files nothing without it and answers
        :class:`IdentifierNotOnCaseError` for any other. The statement must not contain raw
        identifiers."""
        checked = _checked_identifier_at(identifier, "/identifier")
        _screen_text("/statement", statement)
        body = {
            "case_id": str(case_id),
            "identifier": checked,
            "reason": reason,
            "statement": statement,
        }
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return self._request("POST", "/api/v1/disputes", body, headers=headers)

    def get_dispute(self, dispute_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/disputes/{_path_id(dispute_id)}")

    # ---------------------------------------------------------------------------------------
    # Monitoring: watches and alerts
    # ---------------------------------------------------------------------------------------

    def watch(
        self,
        identifiers: Sequence[Mapping[str, str]],
        purpose: str,
        consent_reference: str,
        *,
        label: str | None = None,
        expires_on: str | None = None,
    ) -> list[dict[str, Any]]:
        """Watch tokens (``{"kind", "token"}`` dicts) for the life of a loan (``purpose``:
        loan_monitoring or account_monitoring) with the subject's consent; returns one watch
        ``{"id", "kind", "fingerprint", "label", "expires_on"}`` per identifier, in order.
        Watching again extends a watch; more than 1000 identifiers go in several calls.
        ``expires_on`` (``YYYY-MM-DD``): default 180 days, at most 366."""
        checked = [_checked_identifier(item, index) for index, item in enumerate(identifiers)]
        if not checked:
            raise _local_error("validation_error", "/identifiers")
        _screen_text("/consent_reference", consent_reference)
        _screen_text("/label", label)
        watches: list[dict[str, Any]] = []
        for start in range(0, len(checked), WATCH_BATCH):
            body: dict[str, Any] = {
                "identifiers": checked[start : start + WATCH_BATCH],
                "purpose": purpose,
                "consent_reference": consent_reference,
            }
            if label is not None:
                body["label"] = label
            if expires_on is not None:
                body["expires_on"] = expires_on
            answer = self._request("POST", "/api/v1/watches", body)
            batch = answer.get("watches") if isinstance(answer, dict) else None
            if not isinstance(batch, list) or len(batch) != len(body["identifiers"]):
                raise RegistryError(code="invalid_response")
            watches.extend(batch)
        return watches

    def watches(self, *, label: str | None = None) -> Iterator[dict[str, Any]]:
        """The member's own live watches, newest first, following the cursor pages lazily."""
        _screen_text("/label", label)
        return self._paginate("/api/v1/watches", {"label": label})

    def delete_watch(self, watch_id: str) -> None:
        """Stop watching (the registry deletes the watch)."""
        self._request("DELETE", f"/api/v1/watches/{_path_id(watch_id)}")

    def alerts(self, after: str | None = None, *, limit: int | None = None) -> dict[str, Any]:
        """One page of the member's alerts after the cursor ``after``, oldest first:
        ``{"results": [...], "next_cursor": "...", "has_more": bool}``. Keep ``next_cursor``
        (or the ``cursor`` of the last alert handled) and pass it next time."""
        query = {"after": after or None, "limit": str(limit) if limit else None}
        params = {name: value for name, value in query.items() if value is not None}
        path = "/api/v1/alerts" + ("?" + urllib.parse.urlencode(params) if params else "")
        page = self._request("GET", path)
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise RegistryError(code="invalid_response")
        return page

    # ---------------------------------------------------------------------------------------
    # HTTP
    # ---------------------------------------------------------------------------------------

    def _paginate(self, path: str, query: Mapping[str, str | None]) -> Iterator[dict[str, Any]]:
        params = {name: value for name, value in query.items() if value is not None}
        url: str | None = (
            self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        )
        while url:
            page = self._request_url("GET", url)
            if isinstance(page, list):  # an unpaginated list is accepted too
                yield from page
                return
            if not isinstance(page, dict):
                raise RegistryError(code="invalid_response")
            yield from page.get("results") or []
            url = self._same_origin(page.get("next"))

    def _same_origin(self, link: object) -> str | None:
        """Follow a ``next`` link only to the registry itself: the API key goes with it."""
        if not link:
            return None
        if not isinstance(link, str):
            raise RegistryError(code="invalid_response")
        absolute = urllib.parse.urljoin(self.base_url + "/", link)
        ours, theirs = urllib.parse.urlsplit(self.base_url), urllib.parse.urlsplit(absolute)
        if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc):
            raise RegistryError(code="invalid_response")
        return absolute

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        return self._request_url(method, self.base_url + path, body, headers=headers)

    def _request_url(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        return self._request_full(method, url, body, headers=headers)[0]

    def _request_full(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, Message]:
        """Body and headers of the answer, after retries; raises RegistryError subclasses."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            try:
                return self._send_once(method, url, data, headers or {})
            except _Retry as retry:
                delay = self._retry_delay(attempt, retry.retry_after)
                if attempt >= self.max_retries or delay is None:
                    raise retry.error from None
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now.

        Exponential backoff with "equal jitter"; when the registry sent ``Retry-After`` the wait
        is at least that long (plus up to 10 % jitter so that clients do not return in step).
        """
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _send_once(
        self,
        method: str,
        url: str,
        data: bytes | None,
        extra: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> tuple[Any, Message]:
        # The scheme is http(s) only (checked in the constructor) and redirects are refused.
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self._api_key}")
        request.add_header("Accept", "application/json, application/problem+json")
        request.add_header("User-Agent", self._user_agent)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in extra.items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as response:
                return _decode_json(response.read(), required=True), response.headers
        except urllib.error.HTTPError as failure:
            try:
                error = self._http_failure(failure)
            finally:
                failure.close()
            raise error from None
        except (OSError, http.client.HTTPException) as failure:
            # Connection refused/reset, DNS, TLS, timeouts: nothing reached the application, or
            # the answer was lost; safe to retry because creating calls are idempotent.
            cause = getattr(failure, "reason", failure)
            message = f"registry: transport_error ({type(cause).__name__})"
            raise _Retry(TransportError(message=message), None) from None

    def _http_failure(self, failure: urllib.error.HTTPError) -> Exception:
        status = failure.code
        try:
            problem = _decode_json(failure.read(), required=False)
        except OSError:
            problem = None
        error = error_for_problem(status, problem if isinstance(problem, dict) else None)
        if status in _RETRY_STATUSES:
            retry_after = _parse_retry_after(failure.headers.get("Retry-After"))
            if isinstance(error, (RateLimitedError, ServiceUnavailableError)):
                error.retry_after = retry_after
            return _Retry(error, retry_after)
        return error


# -------------------------------------------------------------------------------------------
# Helpers: local checks before anything is sent
# -------------------------------------------------------------------------------------------


def _checked_base_url(base_url: str, allow_insecure_http: bool) -> str:
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError("refusing to send the API key over plain http to a non-local host")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_error(code: str, pointer: str) -> ValidationError:
    """A refusal on this side: nothing was sent, ``status`` is None."""
    problem = {
        "title": "Refused before sending",
        "code": code,
        "errors": [{"pointer": pointer, "code": code, "detail": "refused by the client"}],
    }
    return ValidationError(status=None, code=code, problem=problem)


def _screen_text(pointer: str, text: str | None) -> None:
    if text is not None and looks_like_raw_identifier(str(text)):
        raise _local_error("raw_pii_rejected", pointer)


def _checked_identifier(item: Mapping[str, str], index: int, prefix: str = "") -> dict[str, str]:
    return _checked_identifier_at(item, f"{prefix}/identifiers/{index}")


def _checked_identifier_at(item: Mapping[str, str], pointer: str) -> dict[str, str]:
    if not isinstance(item, Mapping):
        raise _local_error("validation_error", pointer)
    kind, token = item.get("kind"), item.get("token")
    if kind not in KINDS:
        raise _local_error("validation_error", pointer + "/kind")
    if not is_token(token):
        # A raw value passed where a token belongs must not leave this process.
        code = "raw_pii_rejected" if looks_like_raw_identifier(str(token)) else "validation_error"
        raise _local_error(code, pointer + "/token")
    return {"kind": str(kind), "token": str(token)}


def _checked_case(case: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    body = dict(case)
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, list) or not identifiers:
        raise _local_error("validation_error", prefix + "/identifiers")
    body["identifiers"] = [
        _checked_identifier(item, index, prefix) for index, item in enumerate(identifiers)
    ]
    _screen_text(prefix + "/reference", body.get("reference"))
    return body


def _batch_key(key: str | None, number: int, count: int) -> str:
    if key is None:
        return str(uuid.uuid4())
    return key if count == 1 else f"{key}-{number}"


def _path_id(object_id: str) -> str:
    """Object ids go into URL paths; quote everything so an id cannot change the path."""
    text = str(object_id)
    if not text:
        raise ValueError("empty id")
    return urllib.parse.quote(text, safe="")


def _decode_json(raw: bytes, *, required: bool) -> Any:
    if not raw:
        if required:
            return {}
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        if required:
            raise RegistryError(code="invalid_response") from None
        return None


def _is_replay(headers: Message) -> bool:
    return str(headers.get("Idempotent-Replayed", "")).strip().lower() == "true"


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

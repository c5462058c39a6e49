"""Client against a real HTTP server on 127.0.0.1: retries, Retry-After, problem details."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest

from registry_client import oprf
from registry_client.client import Client
from registry_client.errors import (
    AuthenticationError,
    ConflictError,
    IdempotencyMismatchError,
    IdentifierNotOnCaseError,
    KeyMismatchError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RegistryError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)

RAW_PHONE = "13812345678"


class Sleeps(list):
    """Records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(registry, api_key, sleeps=None, **options) -> Client:
    return Client(
        registry.url, api_key, sleep=sleeps if sleeps is not None else Sleeps(), **options
    )


def _lookup_body(registry):
    return [{"kind": "phone", "token": registry.token_of("phone", RAW_PHONE)}]


def test_it_tokenises_like_the_registry_key(registry, api_key):
    client = _client(registry, api_key)
    token = client.token("phone", "+86 138-1234-5678")
    assert token == registry.token_of("phone", RAW_PHONE)
    assert client.key_id == registry.key_id


def test_it_sends_only_blinded_elements_never_the_value(registry, api_key):
    client = _client(registry, api_key)
    client.tokens("phone", [RAW_PHONE, "13912345678"])
    sent = registry.all_sent_text()
    assert RAW_PHONE not in sent and "8613812345678" not in sent
    body = registry.calls("/api/v1/oprf/evaluate")[0].body
    assert len(body["blinded_elements"]) == 2


def test_it_splits_evaluations_into_batches_of_1000(registry, api_key):
    client = _client(registry, api_key)
    values = [f"138{n:08d}" for n in range(2001)]
    tokens = client.tokens("phone", values)
    sizes = [len(call.body["blinded_elements"]) for call in registry.calls("/api/v1/oprf/evaluate")]
    assert sizes == [1000, 1000, 1]
    assert tokens[2000] == registry.token_of("phone", values[2000])


def test_it_honours_retry_after_on_429(registry, api_key, make_problem):
    registry.canned.append((429, {"Retry-After": "3"}, make_problem(429, "rate_limited")))
    sleeps = Sleeps()
    result = _client(registry, api_key, sleeps).lookup(_lookup_body(registry), "loan_application")
    assert len(result["results"]) == 1
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 3.31
    assert len(registry.calls("/api/v1/lookups")) == 2


def test_it_honours_an_http_date_retry_after_on_503(registry, api_key, make_problem):
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    registry.canned.append((503, {"Retry-After": when}, make_problem(503, "service_unavailable")))
    sleeps = Sleeps()
    _client(registry, api_key, sleeps).token("phone", RAW_PHONE)
    assert len(sleeps) == 1 and 8.0 <= sleeps[0] <= 11.1


def test_it_backs_off_exponentially_with_jitter_without_retry_after(
    registry, api_key, make_problem
):
    for _ in range(4):
        registry.canned.append((503, {}, make_problem(503, "service_unavailable")))
    sleeps = Sleeps()
    _client(registry, api_key, sleeps, backoff_base=1.0).token("phone", RAW_PHONE)
    assert len(sleeps) == 4
    for attempt, seconds in enumerate(sleeps):
        assert 2**attempt / 2 <= seconds <= 2**attempt


def test_it_gives_up_after_max_retries_with_the_problem(registry, api_key, make_problem):
    for _ in range(3):
        registry.canned.append((429, {"Retry-After": "1"}, make_problem(429, "rate_limited")))
    sleeps = Sleeps()
    with pytest.raises(RateLimitedError) as raised:
        _client(registry, api_key, sleeps, max_retries=2).token("phone", RAW_PHONE)
    error = raised.value
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", 1.0)
    assert error.problem["status"] == 429
    assert len(sleeps) == 2


def test_it_does_not_wait_longer_than_max_retry_after(registry, api_key, make_problem):
    registry.canned.append((503, {"Retry-After": "3600"}, make_problem(503, "service_unavailable")))
    sleeps = Sleeps()
    with pytest.raises(ServiceUnavailableError):
        _client(registry, api_key, sleeps).token("phone", RAW_PHONE)
    assert sleeps == []


def test_it_retries_connection_errors_then_raises_transport_error(api_key):
    with socket.socket() as placeholder:  # a port with nobody listening
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    sleeps = Sleeps()
    client = Client(f"http://127.0.0.1:{port}", api_key, sleep=sleeps, max_retries=3)
    with pytest.raises(TransportError) as raised:
        client.token("phone", RAW_PHONE)
    assert raised.value.status is None
    assert len(sleeps) == 3
    assert RAW_PHONE not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, "unauthenticated", AuthenticationError),
        (403, "forbidden_scope", PermissionDeniedError),
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (422, "idempotency_mismatch", IdempotencyMismatchError),
        (500, "server_error", RegistryError),
    ],
)
def test_it_maps_problem_details_to_exceptions(
    registry, api_key, make_problem, status, code, error_class
):
    registry.canned.append((status, {}, make_problem(status, code)))
    sleeps = Sleeps()
    with pytest.raises(error_class) as raised:
        _client(registry, api_key, sleeps).lookup(_lookup_body(registry), "loan_application")
    assert type(raised.value) is error_class
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.problem["code"] == code
    assert sleeps == []  # only 429/502/503/504 and connection errors are retried


def test_it_exposes_validation_errors_with_pointers(registry, api_key, make_problem):
    errors = [{"pointer": "/identifiers/0/token", "code": "raw_pii_rejected", "detail": "..."}]
    registry.canned.append((400, {}, make_problem(400, "validation_error", errors=errors)))
    with pytest.raises(ValidationError) as raised:
        _client(registry, api_key).lookup(_lookup_body(registry), "loan_application")
    assert raised.value.errors == errors
    assert raised.value.code == "validation_error"


def test_it_survives_an_error_answer_that_is_not_json(registry, api_key):
    registry.canned.append((502, {}, None))
    registry.canned.append((400, {}, None))
    with pytest.raises(ValidationError) as raised:
        _client(registry, api_key).lookup(_lookup_body(registry), "loan_application")
    assert raised.value.problem == {}


def test_it_refuses_to_send_a_raw_value_as_a_token(registry, api_key):
    client = _client(registry, api_key)
    with pytest.raises(ValidationError) as raised:
        client.lookup([{"kind": "phone", "token": RAW_PHONE}], "loan_application")
    assert raised.value.code == "raw_pii_rejected"
    assert raised.value.status is None
    assert raised.value.errors[0]["pointer"] == "/identifiers/0/token"
    assert RAW_PHONE not in str(raised.value) and RAW_PHONE not in repr(raised.value.problem)
    assert registry.requests == []


def test_it_refuses_raw_identifiers_in_free_text_before_sending(registry, api_key):
    client = _client(registry, api_key)
    token = registry.token_of("phone", RAW_PHONE)
    case = {
        "reference": f"客户{RAW_PHONE}",
        "category": "identity_theft",
        "confirmed_at": "2026-01-01",
        "identifiers": [{"kind": "phone", "token": token}],
        "attestation": True,
    }
    with pytest.raises(ValidationError):
        client.submit_case(case)
    with pytest.raises(ValidationError):
        client.file_dispute(
            "6f1f6c0e-2c4b-4d7e-9d3f-123456789012",
            {"kind": "phone", "token": token},
            "not_me",
            f"call {RAW_PHONE}",
        )
    with pytest.raises(ValidationError):
        client.lookup(_lookup_body(registry), "loan_application", consent_reference=RAW_PHONE)
    assert registry.requests == []


def test_it_refuses_an_answer_under_another_key(registry, api_key):
    client = _client(registry, api_key, key_id="0123456789abcdef")
    with pytest.raises(KeyMismatchError):
        client.token("phone", RAW_PHONE)


def test_it_refuses_an_identity_element_from_the_registry(registry, api_key):
    answer = {"key_id": registry.key_id, "evaluated_elements": ["00" * 32]}
    registry.canned.append((200, {}, answer))
    with pytest.raises(RegistryError) as raised:
        _client(registry, api_key).token("phone", RAW_PHONE)
    assert raised.value.code == "invalid_response"


def test_it_refuses_an_answer_with_the_wrong_number_of_elements(registry, api_key):
    element = oprf.hash_to_group(b"x").hex()
    registry.canned.append(
        (200, {}, {"key_id": registry.key_id, "evaluated_elements": [element] * 2})
    )
    with pytest.raises(RegistryError):
        _client(registry, api_key).token("phone", RAW_PHONE)


def test_it_does_not_follow_redirects(registry, api_key):
    registry.canned.append((302, {"Location": "http://127.0.0.2:9/steal"}, None))
    with pytest.raises(RegistryError) as raised:
        _client(registry, api_key).token("phone", RAW_PHONE)
    assert raised.value.status == 302
    assert len(registry.requests) == 1


def test_it_sends_the_key_as_a_bearer_token_and_keeps_it_out_of_repr(registry, api_key):
    client = _client(registry, api_key)
    client.token("phone", RAW_PHONE)
    assert registry.requests[0].headers["Authorization"] == f"Bearer {api_key}"
    assert api_key not in repr(client)


def test_it_refuses_plain_http_to_a_remote_host(api_key):
    with pytest.raises(ValueError):
        Client("http://registry.example.com", api_key)
    Client("http://registry.example.com", api_key, allow_insecure_http=True)
    Client("https://registry.example.com/", api_key)


def test_it_sends_idempotency_keys_when_creating(registry, api_key):
    token = registry.token_of("phone", RAW_PHONE)
    case = {
        "reference": "CASE-2026-0001",
        "category": "identity_theft",
        "confirmed_at": "2026-01-01",
        "identifiers": [{"kind": "phone", "token": token}],
        "attestation": True,
    }
    results = _client(registry, api_key).submit_cases(
        [case, {**case, "reference": "CASE-2"}], idempotency_key="k1"
    )
    assert [result["status"] for result in results] == ["created", "created"]
    assert registry.calls("/api/v1/cases/batch")[0].headers["Idempotency-Key"] == "k1"


def test_it_follows_cursor_pages_on_the_same_origin_only(registry, api_key):
    first = {"next": f"{registry.url}/api/v1/cases?cursor=abc", "results": [{"id": "1"}]}
    second = {"next": "https://elsewhere.example/api/v1/cases?cursor=def", "results": [{"id": "2"}]}
    registry.canned.extend([(200, {}, first), (200, {}, second)])
    pages = _client(registry, api_key).list_cases(status="active")
    assert next(pages)["id"] == "1"
    assert next(pages)["id"] == "2"
    with pytest.raises(RegistryError):
        next(pages)
    assert registry.requests[0].path == "/api/v1/cases?status=active"
    assert registry.requests[1].path == "/api/v1/cases?cursor=abc"


# --- disputes (issue 13: the subject's identifier goes with the dispute) ---------------------


def test_it_files_a_dispute_with_the_subjects_identifier(registry, api_key):
    token = registry.list_identifier("phone", RAW_PHONE, "identity_theft")
    case_id = registry.listed[token][0]["case_id"]
    client = _client(registry, api_key)
    dispute = client.file_dispute(case_id, {"kind": "phone", "token": token}, "not_me", "Not me.")
    assert dispute["status"] == "open" and dispute["case_id"] == case_id
    (sent,) = registry.calls("/api/v1/disputes")
    assert sent.body == {
        "case_id": case_id,
        "identifier": {"kind": "phone", "token": token},
        "reason": "not_me",
        "statement": "Not me.",
    }
    assert sent.headers.get("Idempotency-Key")


def test_it_raises_identifier_not_on_case_for_another_identifier(registry, api_key):
    token = registry.list_identifier("phone", RAW_PHONE, "identity_theft")
    case_id = registry.listed[token][0]["case_id"]
    other = registry.token_of("phone", "13912345678")
    client = _client(registry, api_key)
    with pytest.raises(IdentifierNotOnCaseError) as raised:
        client.file_dispute(case_id, {"kind": "phone", "token": other}, "not_me")
    assert raised.value.status == 422 and raised.value.code == "identifier_not_on_case"
    assert not isinstance(raised.value, IdempotencyMismatchError)


def test_it_never_sends_a_raw_identifier_as_the_disputes_identifier(registry, api_key):
    client = _client(registry, api_key)
    case_id = "6f1f6c0e-2c4b-4d7e-9d3f-123456789012"
    with pytest.raises(ValidationError) as raised:
        client.file_dispute(case_id, {"kind": "phone", "token": RAW_PHONE}, "not_me")
    assert raised.value.code == "raw_pii_rejected" and raised.value.status is None
    for bad in ({"kind": "fax", "token": "ab" * 64}, {"kind": "phone"}, "ab" * 64):
        with pytest.raises(ValidationError):
            client.file_dispute(case_id, bad, "not_me")
    assert registry.requests == []

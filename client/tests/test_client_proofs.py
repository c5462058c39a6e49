"""The client trusts no evaluator: it checks the published key document and every answer's
proof, and makes no token from an answer that fails (ProofError names the evaluator)."""

from __future__ import annotations

import pytest

from registry_client import oprf
from registry_client.client import Client
from registry_client.errors import KeyMismatchError, ProofError, RegistryError


def _client(registry, api_key, **options) -> Client:
    return Client(registry.url, api_key, max_retries=0, **options)


def test_it_refuses_a_token_from_an_evaluator_that_used_another_key(registry, api_key):
    registry.lying_sk, _ = oprf.derive_key_pair(bytes(32), b"not the consortium key")
    with pytest.raises(ProofError) as raised:
        _client(registry, api_key).token("phone", "13812345678")
    assert raised.value.evaluator == "registry"
    assert "13812345678" not in str(raised.value)


def test_it_refuses_an_answer_without_a_proof(registry, api_key, make_problem):
    registry.canned.append((200, {}, registry.key_document()))
    element = oprf.blind(b"x")[1]
    registry.canned.append(
        (
            200,
            {},
            {
                "key_id": registry.key_id,
                "evaluator": "registry",
                "evaluated_elements": [oprf.blind_evaluate(registry.sk, element).hex()],
            },
        )
    )
    with pytest.raises(ProofError):
        _client(registry, api_key).evaluate([element])


def test_it_refuses_a_key_document_whose_key_id_is_not_its_key(registry, api_key):
    document = registry.key_document()
    document["key_id"] = "0" * 16
    registry.canned.append((200, {}, document))
    with pytest.raises(RegistryError) as raised:
        _client(registry, api_key).token("phone", "13812345678")
    assert raised.value.code == "invalid_response"


def test_it_refuses_a_key_other_than_the_pinned_one(registry, api_key):
    with pytest.raises(KeyMismatchError):
        _client(registry, api_key, key_id="0123456789abcdef").token("phone", "13812345678")


def test_it_refuses_custodian_shares_that_are_not_shares_of_the_key(registry, api_key):
    shares = oprf.split_key(registry.sk, threshold=2, count=3)
    other = oprf.split_key(oprf.derive_key_pair(bytes(32), b"other")[0], threshold=2, count=3)
    evaluators = [
        {"id": f"c{i}", "index": i, "url": registry.url, "public_key": oprf.public_share(k).hex()}
        for i, k in [*shares[:2], other[2]]
    ]
    document = {**registry.key_document(), "threshold": 2, "evaluators": evaluators}
    registry.canned.append((200, {}, document))
    with pytest.raises(RegistryError) as raised:
        _client(registry, api_key).key_document()
    assert raised.value.code == "invalid_response"

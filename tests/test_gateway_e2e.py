"""End to end: the member gateway (`registry-client serve`, its own process) in front of the
real registry (gunicorn), answer for answer against the Python client doing the same calls.

Alice reports cases through her gateway with raw values, and the same people through the
Python client with tokens; Bob looks them up through his gateway and through the client;
Dave, whose daily lookup quota is five units and who may not submit, sees the registry's
429 (with Retry-After) and 403 through the gateway as the client sees them. No raw value or
token appears in any gateway answer or log. (Watches and alerts await the registry's
monitoring endpoints: the client tests cover them against the fake registry.)
"""

import contextlib
import http.client
import json
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from registry_client.canonical import canonicalize, resident_id_check_digit
from registry_client.client import Client
from registry_client.errors import RegistryError

from registry.actors import Actor
from registry.models import Case
from registry.services.members import member_set_limit
from tests.support.factories import token_for
from tests.support.servers import free_port, gunicorn, server_env
from tests.support.world import make_member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

YESTERDAY = (date.today() - timedelta(days=1)).isoformat()
FIRST17 = "11010519800101123"
RESIDENT_ID = FIRST17 + resident_id_check_digit(FIRST17)
REPORTED_PHONE = "139 0000 4242"
OTHER_PHONE = "13900004343"
EMAIL = "Someone@Example.COM"
RAW = [REPORTED_PHONE, "13900004242", OTHER_PHONE, RESIDENT_ID, EMAIL, "someone@example.com"]


@contextlib.contextmanager
def gateway(base: str, api_key: str, log_path: Path):
    """`registry-client serve` on a free loopback port; yields (host, port)."""
    port = free_port()
    env = server_env(REGISTRY_URL=base, REGISTRY_API_KEY=api_key)
    command = [sys.executable, "-m", "registry_client", "serve", "--port", str(port)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    address = ("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                call(address, "GET", "/healthz")
                break
            except OSError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(15)


def call(address, method: str, path: str, body=None) -> tuple[int, dict, object]:
    connection = http.client.HTTPConnection(*address, timeout=60)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None
    finally:
        connection.close()


def values(*pairs):
    return [{"kind": kind, "value": value} for kind, value in pairs]


def tokens(client: Client, *pairs):
    return [{"kind": kind, "token": client.token(kind, value)} for kind, value in pairs]


def case_body(reference: str, identifiers: list) -> dict:
    return {
        "reference": reference,
        "category": "money_mule",
        "confirmed_at": YESTERDAY,
        "identifiers": identifiers,
        "attestation": True,
    }


def comparable_case(case: dict) -> dict:
    """A case as answered, less what differs between two submissions of the same people."""
    different = {"id", "reference", "created_at"}
    return {key: value for key, value in case.items() if key not in different}


def client_error(call_it) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        call_it()
    return caught.value


def test_it_answers_every_call_as_the_python_client_does(world, tmp_path):
    dave = make_member("DAVE_LOOKUPS", scopes=["lookup"])
    member_set_limit(
        actor=Actor.system(),
        member=dave.member,
        scope="lookup",
        per_minute=100,
        per_day=5,
    )
    log_path = tmp_path / "gateways.log"
    people = [("phone", REPORTED_PHONE), ("cn_resident_id", RESIDENT_ID)]
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(gunicorn(workers=2))
        alice_gw = stack.enter_context(gateway(base, world.alice.raw_key, log_path))
        bob_gw = stack.enter_context(gateway(base, world.bob.raw_key, log_path))
        dave_gw = stack.enter_context(gateway(base, dave.raw_key, log_path))
        alice, bob = Client(base, world.alice.raw_key), Client(base, world.bob.raw_key)
        dave_client = Client(base, dave.raw_key, max_retries=0)
        answers = []

        # One case: the gateway with raw values, the client with tokens; same people.
        status, _, by_gateway = call(
            alice_gw, "POST", "/v1/cases", case_body("GW-1", values(*people))
        )
        by_client = alice.submit_case(case_body("PY-1", tokens(alice, *people)))
        answers.append(by_gateway)
        assert status == 201
        assert comparable_case(by_gateway) == comparable_case(by_client)
        assert (
            by_gateway["identifiers"][0]["fingerprint"]
            == by_client["identifiers"][0]["fingerprint"]
        )

        # The same reference again: 409 conflict from both.
        status, _, conflict = call(
            alice_gw, "POST", "/v1/cases", case_body("GW-1", values(*people))
        )
        error = client_error(lambda: alice.submit_case(case_body("PY-1", tokens(alice, *people))))
        assert (status, conflict["code"]) == (error.status, error.code) == (409, "conflict")

        # A batch: per-case results in order, the same statuses and codes.
        batch = [("email", EMAIL)], [("phone", OTHER_PHONE)], [("phone", REPORTED_PHONE)]
        status, _, gw_batch = call(
            alice_gw,
            "POST",
            "/v1/cases/batch",
            {
                "cases": [case_body(f"GW-B{n}", values(*ids)) for n, ids in enumerate(batch)]
                + [case_body("GW-1", values(*people))]
            },
        )
        py_batch = alice.submit_cases(
            [case_body(f"PY-B{n}", tokens(alice, *ids)) for n, ids in enumerate(batch)]
            + [case_body("PY-1", tokens(alice, *people))]
        )
        answers.append(gw_batch)
        assert status == 200
        assert [r["status"] for r in gw_batch["results"]] == [r["status"] for r in py_batch]
        assert [r["status"] for r in py_batch] == ["created", "created", "created", "error"]
        for ours, theirs in zip(gw_batch["results"], py_batch, strict=True):
            if ours["status"] == "created":
                assert comparable_case(ours["case"]) == comparable_case(theirs["case"])
            else:
                assert ours["error"]["code"] == theirs["error"]["code"] == "conflict"

        # Lookups: Carol looked these people up first, so velocity is not all zeros.
        carol = Client(base, world.carol.raw_key)
        looked_up = [*people, ("phone", OTHER_PHONE), ("email", "nobody@example.org")]
        carol.lookup(tokens(carol, *looked_up), "loan_application")
        body = {"purpose": "loan_application", "identifiers": values(*looked_up)}
        status, _, gw_lookup = call(bob_gw, "POST", "/v1/lookups", body)
        py_lookup = bob.lookup(tokens(bob, *looked_up), "loan_application")
        answers.append(gw_lookup)
        assert status == 200 and gw_lookup["errors"] == []
        assert [r["index"] for r in gw_lookup["results"]] == [0, 1, 2, 3]
        assert [{k: v for k, v in r.items() if k != "index"} for r in gw_lookup["results"]] == [
            {k: v for k, v in r.items() if k != "token"} for r in py_lookup["results"]
        ]
        assert [r["matched"] for r in gw_lookup["results"]] == [True, True, True, False]
        assert gw_lookup["results"][0]["velocity"]["24h"] == 1

        # A value that does not canonicalise is reported by index, the rest answered.
        mixed = {"purpose": "loan_application", "identifiers": values(("phone", "12345"), *people)}
        status, _, gw_mixed = call(bob_gw, "POST", "/v1/lookups", mixed)
        answers.append(gw_mixed)
        assert gw_mixed["errors"] == [{"index": 0, "code": "invalid_phone"}]
        assert [r["index"] for r in gw_mixed["results"]] == [1, 2]

        # The registry's own refusals, as the client sees them.
        bad_purpose = {"purpose": "curiosity", "identifiers": values(*people)}
        status, _, refused = call(bob_gw, "POST", "/v1/lookups", bad_purpose)
        error = client_error(lambda: bob.lookup(tokens(bob, *people), "curiosity"))
        assert (status, refused["code"]) == (error.status, error.code)
        assert [e["pointer"] for e in refused["errors"]] == [e["pointer"] for e in error.errors]

        status, _, forbidden = call(dave_gw, "POST", "/v1/cases", case_body("D-1", values(*people)))
        error = client_error(
            lambda: dave_client.submit_case(case_body("D-2", tokens(dave_client, *people)))
        )
        assert (status, forbidden["code"]) == (error.status, error.code) == (403, "forbidden_scope")

        # Dave's daily quota (a few units: reading the key document costs one too), shared by
        # his gateway and his client: once it is spent, both see 429 with Retry-After.
        one = {"purpose": "loan_application", "identifiers": values(people[0])}
        for _ in range(6):
            status, headers, limited = call(dave_gw, "POST", "/v1/lookups", one)
            if status != 200:
                break
        error = client_error(
            lambda: dave_client.lookup(tokens(dave_client, people[0]), "loan_application")
        )
        assert (status, limited["code"]) == (error.status, error.code) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1 and error.retry_after is not None
        answers.append(limited)

    assert Case.objects.filter(member=world.alice.member).count() == 2 + 3 + 3
    log = log_path.read_text()
    assert log.count("listening on 127.0.0.1") == 3 and "POST /v1/lookups 429" in log
    text = log + json.dumps(answers)
    for raw in RAW:
        assert raw not in text
    for kind, raw in [*people, ("phone", OTHER_PHONE), ("email", EMAIL)]:
        canonical = canonicalize(kind, raw)
        assert canonical not in text
        assert token_for(kind, canonical) not in text
    for key in (world.alice.raw_key, world.bob.raw_key, dave.raw_key):
        assert key not in log

"""2-of-3 custody with real processes: three custodians (gunicorn, REGISTRY_ROLE=custodian,
each with its own database and member keys) hold shares of the RFC 9497 vectors' key, made by
`manage.py oprf_keygen`; the registry holds no share and publishes them.

Proves: any two custodians give the vectors' EvaluationElement and Output; a member's tokens
come through with one custodian stopped; a custodian answering with a wrong share is detected
and named; a member key of one custodian is refused by another; the registry cannot evaluate.
"""

import itertools
import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from registry_client import oprf
from registry_client.client import Client
from registry_client.errors import NotEnoughEvaluatorsError
from registry_client.evaluators import KeyDocument

from tests.support import servers
from tests.support.servers import ROOT, gunicorn, server_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
VECTORS = json.loads((ROOT / "spec" / "vectors" / "voprf-ristretto255-sha512.json").read_text())
VECTOR = VECTORS["vectors"][0]
SK = bytes.fromhex(VECTORS["skSm"])
MEMBER = "CUSTODY_TEST"
STOPPED = "http://127.0.0.1:9"  # the discard port: nothing listens


def manage(database_url: str, *args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=server_env(DATABASE_URL=database_url, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def database_url(name: str) -> str:
    base = servers.test_database_url()
    return base[: base.rindex("/") + 1] + name


def admin_url() -> str:
    return database_url("postgres")


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory, django_db_blocker):
    """Shares of the vectors' key (seed a3.., info "test key") and the public document."""
    out = tmp_path_factory.mktemp("ceremony")
    seed_file = out / "seed.hex"
    seed_file.write_text(VECTORS["seed"])
    from django.test import override_settings

    with override_settings(REGISTRY_OPRF_KEY_INFO=bytes.fromhex(VECTORS["keyInfo"]).decode()):
        call_command(
            "oprf_keygen",
            "--threshold=2",
            "--custodians=3",
            f"--out={out / 'keys'}",
            f"--seed-file={seed_file}",
        )
    seed_file.unlink()
    return out / "keys"


@pytest.fixture(scope="module")
def custodian_databases():
    """Three migrated databases, one per custodian (cloned from one migrated template)."""
    # Named after this run's test database, so that parallel runs (other checkouts, CI)
    # never share them.
    prefix = connection.settings_dict["NAME"]
    names = [f"{prefix}_custodian_{i}" for i in (1, 2, 3)]
    template = f"{prefix}_custodian_template"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        for name in [*names, template]:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{template}"')
    manage(database_url(template), "migrate", "--no-input", REGISTRY_ROLE="registry")
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield [database_url(name) for name in names]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        for name in [*names, template]:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def custodian_env(ceremony: Path, index: int, **extra: str) -> dict:
    return {
        "REGISTRY_ROLE": "custodian",
        "REGISTRY_OPRF_SHARE_FILE": str(ceremony / f"custodian-{index}.share.json"),
        "REGISTRY_OPRF_KEYS_FILE": str(ceremony / "public_keys.json"),
        **extra,
    }


@pytest.fixture(scope="module")
def member_keys(ceremony, custodian_databases):
    """The member's API key at each custodian, issued by that custodian's own command."""
    keys = {}
    for index, url in enumerate(custodian_databases, start=1):
        env = custodian_env(ceremony, index)
        manage(url, "create_member", MEMBER, "--name", "Custody test lender", **env)
        keys[f"custodian-{index}"] = manage(
            url, "issue_api_key", "--member", MEMBER, "--scope", "lookup", **env
        ).splitlines()[-1]
    return keys


@pytest.fixture(scope="module")
def custodians(ceremony, custodian_databases, member_keys):
    """Three running custodians for the whole module."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                gunicorn(workers=1, DATABASE_URL=db, **custodian_env(ceremony, index))
            )
            for index, db in enumerate(custodian_databases, start=1)
        ]


def published(ceremony: Path, folder: Path, urls: list[str]) -> str:
    """The public document with the custodians' URLs filled in, as an operator does after
    the ceremony; returns the file's path for REGISTRY_OPRF_KEYS_FILE."""
    document = json.loads((ceremony / "public_keys.json").read_text())
    for evaluator, url in zip(document["evaluators"], urls, strict=True):
        evaluator["url"] = url
    path = folder / "public_keys.json"
    path.write_text(json.dumps(document))
    return str(path)


def evaluate_at(url: str, api_key: str, elements: list[str]) -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        url + "/api/v1/oprf/evaluate",
        data=json.dumps({"blinded_elements": elements}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def test_it_gives_the_vector_evaluation_through_any_two_custodians(
    ceremony, custodians, member_keys
):
    document = KeyDocument.parse(json.loads((ceremony / "public_keys.json").read_text()), None)
    blinded = [bytes.fromhex(VECTOR["BlindedElement"])]
    answers = {}
    for evaluator, url in zip(document.evaluators, custodians, strict=True):
        answer = evaluate_at(url, member_keys[evaluator.id], [VECTOR["BlindedElement"]])
        assert answer["evaluator"] == evaluator.id
        evaluated = [bytes.fromhex(e) for e in answer["evaluated_elements"]]
        oprf.verify_proof(evaluator.public_key, blinded, evaluated, bytes.fromhex(answer["proof"]))
        answers[evaluator.index] = evaluated
    assert document.public_key.hex() == VECTORS["pkSm"]
    for pair in itertools.combinations(answers, 2):
        combined = oprf.combine_evaluations({i: answers[i] for i in pair})[0]
        assert combined.hex() == VECTOR["EvaluationElement"]
        output = oprf.finalize(
            bytes.fromhex(VECTOR["Input"]), bytes.fromhex(VECTOR["Blind"]), combined
        )
        assert output.hex() == VECTOR["Output"]


def registry_client(world, base: str, member_keys: dict) -> Client:
    return Client(base, world.alice.raw_key, custodian_keys=member_keys, max_retries=0)


def expected_token(kind: str, canonical: str) -> str:
    return oprf.token_hex(oprf.evaluate(SK, oprf.oprf_input(kind, canonical)))


def test_it_makes_tokens_with_one_custodian_stopped_and_the_registry_cannot_evaluate(
    world, custodians, member_keys, ceremony, tmp_path
):
    keys_file = published(ceremony, tmp_path, custodians)
    with gunicorn(workers=1, REGISTRY_OPRF_KEYS_FILE=keys_file) as registry:
        client = registry_client(world, registry, member_keys)
        assert client.token("phone", "13812345678") == expected_token("phone", "+8613812345678")
        with pytest.raises(urllib.error.HTTPError) as refused:
            evaluate_at(registry, world.alice.raw_key, [VECTOR["BlindedElement"]])
        assert refused.value.code == 404
    # Custodian 1 stopped: nothing listens at its address any more.
    keys_file = published(ceremony, tmp_path, [STOPPED, *custodians[1:]])
    with gunicorn(workers=1, REGISTRY_OPRF_KEYS_FILE=keys_file) as registry:
        client = registry_client(world, registry, member_keys)
        assert client.token("email", "a@example.com") == expected_token("email", "a@example.com")


def test_it_names_a_custodian_that_answers_with_a_wrong_share(
    world, custodians, member_keys, ceremony, custodian_databases, tmp_path, caplog
):
    wrong = tmp_path / "custodian-3.share.json"
    share = json.loads((ceremony / "custodian-3.share.json").read_text())
    liar_share = oprf.derive_key_pair(bytes(32), b"a share of nothing")[0]
    share.update(share=liar_share.hex(), public_share=oprf.public_share(liar_share).hex())
    wrong.write_text(json.dumps(share))
    env = custodian_env(ceremony, 3, REGISTRY_OPRF_SHARE_FILE=str(wrong))
    with gunicorn(workers=1, DATABASE_URL=custodian_databases[2], **env) as liar:
        # Custodian 1 is down as well, so only the liar could make up the threshold.
        keys_file = published(ceremony, tmp_path, [STOPPED, custodians[1], liar])
        with gunicorn(workers=1, REGISTRY_OPRF_KEYS_FILE=keys_file) as registry:
            client = registry_client(world, registry, member_keys)
            with (
                caplog.at_level(logging.WARNING, logger="registry_client"),
                pytest.raises(NotEnoughEvaluatorsError) as raised,
            ):
                client.token("phone", "13812345678")
    assert raised.value.failures == {
        "custodian-1": "transport_error",
        "custodian-3": "invalid_proof",
    }
    assert "custodian-3" in caplog.text


def test_it_refuses_a_member_key_of_another_custodian(custodians, member_keys):
    with pytest.raises(urllib.error.HTTPError) as refused:
        evaluate_at(custodians[1], member_keys["custodian-1"], [VECTOR["BlindedElement"]])
    assert refused.value.code == 401


def test_it_serves_no_cases_or_lookups_at_a_custodian(custodians, member_keys):
    request = urllib.request.Request(  # noqa: S310
        custodians[0] + "/api/v1/cases",
        headers={"Authorization": f"Bearer {member_keys['custodian-1']}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert refused.value.code == 404


def test_it_never_writes_the_whole_key(ceremony):
    written = "".join(path.read_text() for path in Path(ceremony).iterdir())
    assert VECTORS["skSm"] not in written and VECTORS["seed"] not in written


CUSTODIAN_ADMIN_PROBE = """
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from registry.actors import Actor
from registry.models import Member
from registry.services.members import officer_create
from registry.services.otp import totp_device_create

user = get_user_model().objects.filter(username="custodian_officer").first()
if user is None:
    user = officer_create(actor=Actor.system(), username="custodian_officer",
                          password="a long custodian password", email="o@custodian.example")
    totp_device_create(actor=Actor.system(), user=user)
client = Client()
client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
session = client.session
session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
session.save()
member = Member.objects.get(code="CUSTODY_TEST")
pages = ["/admin/", "/admin/registry/member/", f"/admin/registry/member/{member.pk}/change/",
         f"/admin/registry/member/{member.pk}/limit/", "/admin/registry/apikey/",
         "/admin/registry/auditevent/?action=oprf.evaluated"]
for page in pages:
    print(page, client.get(page).status_code)
answer = client.post(f"/admin/registry/member/{member.pk}/limit/",
                     {"scope": "evaluate", "per_minute": 500, "per_day": 5000})
print("set-limit", answer.status_code, member.limits.get(scope="evaluate").per_day)
print("/admin/registry/case/", client.get("/admin/registry/case/").status_code)
"""


def test_it_gives_a_custodians_officers_an_admin_for_member_keys_and_element_quotas(
    ceremony, custodian_databases, member_keys, custodians
):
    """The custodian's own admin (REGISTRY_ROLE=custodian): members, their keys, their
    evaluate (element) quotas and the evaluate calls' audit trail; no cases."""
    evaluate_at(custodians[0], member_keys["custodian-1"], [VECTOR["BlindedElement"]])
    output = manage(
        custodian_databases[0], "shell", "-c", CUSTODIAN_ADMIN_PROBE, **custodian_env(ceremony, 1)
    )
    answers = dict(line.rsplit(" ", 1) for line in output.splitlines() if line.startswith("/"))
    assert all(status == "200" for page, status in answers.items() if "case" not in page), output
    assert "set-limit 302 5000" in output
    assert answers["/admin/registry/case/"] == "404"

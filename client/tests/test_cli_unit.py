"""``registry-client`` against the fake registry: streaming lookups and idempotent submission.

Every test that produces output also checks that no raw value and no token appears in it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry_client.bulk import TokenCache
from registry_client.canonical import canonicalize
from registry_client.cli import main

LISTED_PHONE = "138 1234 5678"
VELOCITY_PHONE = "13912345678"
RESIDENT_ID = "11010519491231002X"
HEX_128 = re.compile(r"[0-9a-f]{128}")


@pytest.fixture
def env(registry, api_key, monkeypatch):
    monkeypatch.setenv("REGISTRY_URL", registry.url)
    monkeypatch.setenv("REGISTRY_API_KEY", api_key)
    return registry


def _write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows(rows)
    return path


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _assert_no_raw_values(texts, raw_values):
    """No raw value may appear: as given, as digits only, or in its canonical form."""
    blob = "\n".join(texts)
    for value in raw_values:
        forms = {value, re.sub(r"\D", "", value)}
        for kind in ("phone", "cn_resident_id"):
            with contextlib.suppress(ValueError):
                forms.add(canonicalize(kind, value))
        for form in forms:
            if len(form) >= 5:
                assert form not in blob


def _assert_no_secrets(texts, raw_values):
    """Output and messages: neither raw values nor anything shaped like a token."""
    _assert_no_raw_values(texts, raw_values)
    assert not HEX_128.search("\n".join(texts))


def _lookup_file(tmp_path):
    rows = [
        ["name", "mobile", "id_no", "note"],
        ["王伟", LISTED_PHONE, RESIDENT_ID, "first"],
        ["李娜", VELOCITY_PHONE, "", ""],
        ["张敏", "12345", RESIDENT_ID, ""],
        ["刘洋", "", "", ""],
        ["陈静", "+86 138-1234-5678", "", ""],
    ]
    return _write(tmp_path / "applicants.csv", rows)


def test_it_writes_one_fingerprint_free_result_per_row(env, tmp_path, capsys):
    env.list_identifier("phone", LISTED_PHONE, "identity_theft", "money_mule")
    env.velocity[env.token_of("phone", VELOCITY_PHONE)] = {"24h": 3, "7d": 4, "30d": 5}
    source = _lookup_file(tmp_path)
    code = main(
        [
            "lookup",
            str(source),
            "--purpose",
            "loan_application",
            "--column",
            "phone=mobile",
            "--column",
            "cn_resident_id=id_no",
        ]
    )
    captured = capsys.readouterr()
    rows = _read_csv(tmp_path / "applicants.results.csv")

    assert code == 1  # rows 3 and 4 are invalid
    assert [row["row"] for row in rows] == ["1", "2", "3", "4", "5"]
    first, second, third, fourth, fifth = rows
    assert (first["matched"], first["mobile.cases"]) == ("true", "2")
    assert first["mobile.categories"] == "identity_theft;money_mule"
    assert first["id_no.status"] == "ok" and first["id_no.matched"] == "false"
    assert (second["matched"], second["max_velocity_24h"], second["mobile.velocity_30d"]) == (
        "false",
        "3",
        "5",
    )
    assert (third["status"], third["mobile.status"], third["id_no.status"]) == (
        "invalid",
        "invalid_phone",
        "ok",
    )
    assert (fourth["status"], fourth["mobile.status"]) == ("invalid", "empty")
    assert fifth["matched"] == "true"  # the same number written differently
    assert "row 3: mobile: invalid_phone" in captured.err
    assert "row 4: no_identifiers" in captured.err
    assert "rows: 5, invalid rows: 2, matched rows: 2, velocity alerts: 1" in captured.out

    output = (tmp_path / "applicants.results.csv").read_text(encoding="utf-8")
    raw = [LISTED_PHONE, VELOCITY_PHONE, RESIDENT_ID, "12345", "王伟", "李娜", "first"]
    _assert_no_secrets([output, captured.out, captured.err], raw)
    _assert_no_raw_values([env.all_sent_text()], [LISTED_PHONE, VELOCITY_PHONE, RESIDENT_ID])


def test_it_evaluates_each_distinct_identifier_once_per_run(env, tmp_path, capsys):
    rows = [["phone"]] + [[LISTED_PHONE]] * 1500 + [["+8613812345678"]] * 1500
    source = _write(tmp_path / "repeat.csv", rows)
    assert main(["lookup", str(source), "--purpose", "credit_review"]) == 0
    evaluated = [len(c.body["blinded_elements"]) for c in env.calls("/api/v1/oprf/evaluate")]
    assert evaluated == [1]
    capsys.readouterr()


def test_it_streams_chunks_of_at_most_1000_identifiers(env, tmp_path, capsys):
    output = tmp_path / "out.csv"
    lines_when_looked_up = []

    def count_written_lines():
        lines_when_looked_up.append(output.read_text().count("\n") if output.exists() else 0)

    env.on_lookup = count_written_lines
    rows = [["phone", "email"]] + [[f"138{n:08d}", f"u{n}@example.com"] for n in range(1201)]
    source = _write(tmp_path / "big.csv", rows)
    assert (
        main(["lookup", str(source), "--purpose", "loan_application", "--output", str(output)]) == 0
    )

    sizes = [len(call.body["identifiers"]) for call in env.calls("/api/v1/lookups")]
    assert max(sizes) <= 1000 and sum(sizes) == 2402
    assert all(len(c.body["blinded_elements"]) <= 1000 for c in env.calls("/api/v1/oprf/evaluate"))
    # Each chunk was on disk before the next lookup: output is streamed, not kept to the end.
    assert lines_when_looked_up[0] == 0
    assert lines_when_looked_up[1] == 1 + sizes[0] // 2
    assert output.read_text().count("\n") == 1202
    capsys.readouterr()


def test_it_writes_json_lines_on_request(env, tmp_path, capsys):
    env.list_identifier("phone", LISTED_PHONE, "first_party_fraud")
    source = _lookup_file(tmp_path)
    code = main(
        [
            "lookup",
            str(source),
            "--purpose",
            "loan_application",
            "--jsonl",
            "--column",
            "phone=mobile",
        ]
    )
    lines = (tmp_path / "applicants.results.jsonl").read_text(encoding="utf-8").splitlines()
    results = [json.loads(line) for line in lines]
    assert code == 1
    assert [result["row"] for result in results] == [1, 2, 3, 4, 5]
    assert results[0]["columns"]["mobile"]["categories"] == ["first_party_fraud"]
    assert results[0]["columns"]["mobile"]["velocity"]["24h"] == 0
    _assert_no_secrets(lines, [LISTED_PHONE, RESIDENT_ID])
    capsys.readouterr()


def test_it_sends_each_consent_reference_with_its_own_rows(env, tmp_path, capsys):
    rows = [
        ["phone", "consent"],
        ["13812345678", "CONSENT-A"],
        ["13912345678", "CONSENT-A"],
        ["13712345678", "CONSENT-B"],
        ["13612345678", "授权13612345678"],  # raw value in the consent column: never sent
    ]
    source = _write(tmp_path / "consent.csv", rows)
    code = main(
        ["lookup", str(source), "--purpose", "account_opening", "--consent-column", "consent"]
    )
    captured = capsys.readouterr()
    calls = env.calls("/api/v1/lookups")
    assert [(c.body["consent_reference"], len(c.body["identifiers"])) for c in calls] == [
        ("CONSENT-A", 2),
        ("CONSENT-B", 1),
    ]
    assert code == 1
    assert "row 4: raw_pii_in_consent_reference" in captured.err
    assert "13612345678" not in env.all_sent_text()


def test_it_stops_with_exit_2_on_a_refused_key(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REGISTRY_API_KEY", "wrong-key")
    source = _lookup_file(tmp_path)
    assert (
        main(["lookup", str(source), "--purpose", "loan_application", "--column", "phone=mobile"])
        == 2
    )
    assert "unauthenticated" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["lookup", "missing.csv", "--purpose", "loan_application"],
        ["lookup", "{file}", "--purpose", "loan_application", "--column", "phone=nope"],
        ["lookup", "{file}", "--purpose", "loan_application", "--column", "passport=mobile"],
        ["lookup", "{file}", "--purpose", "loan_application"],  # no header named like a kind
        ["lookup", "{file}", "--purpose", "loan_application", "--consent-column", "nope"],
    ],
)
def test_it_exits_2_on_usage_errors(env, tmp_path, capsys, argv):
    source = _lookup_file(tmp_path)
    assert main([arg.replace("{file}", str(source)) for arg in argv]) == 2
    assert env.requests == []
    assert "error" in capsys.readouterr().err


def test_it_exits_2_on_an_unknown_purpose(env, tmp_path, capsys):
    source = _lookup_file(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["lookup", str(source), "--purpose", "gossip", "--column", "phone=mobile"])
    assert exited.value.code == 2
    assert env.requests == []
    capsys.readouterr()


def test_it_needs_a_url_and_a_key(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("REGISTRY_URL", raising=False)
    monkeypatch.delenv("REGISTRY_API_KEY", raising=False)
    assert main(["token", "--kind", "phone", "13812345678"]) == 2
    assert "REGISTRY_URL" in capsys.readouterr().err


def test_it_prints_the_token_of_a_value(env, capsys):
    assert main(["token", "--kind", "phone", LISTED_PHONE]) == 0
    assert capsys.readouterr().out.strip() == env.token_of("phone", LISTED_PHONE)


def test_it_reads_token_values_from_stdin(env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{LISTED_PHONE}\n{VELOCITY_PHONE}\n"))
    assert main(["token", "--kind", "phone", "-"]) == 0
    assert capsys.readouterr().out.split() == [
        env.token_of("phone", LISTED_PHONE),
        env.token_of("phone", VELOCITY_PHONE),
    ]


def test_it_refuses_an_invalid_token_value_without_echoing_it(env, capsys):
    assert main(["token", "--kind", "cn_resident_id", "110105194912310021"]) == 1
    captured = capsys.readouterr()
    assert "value 1: invalid_cn_resident_id" in captured.err
    assert "110105194912310021" not in captured.err + captured.out
    assert env.requests == []


def test_it_keeps_the_token_cache_bounded(env, api_key):
    from registry_client.client import Client

    cache = TokenCache(Client(env.url, api_key), max_size=10)
    cache.tokens_for(("phone", f"+86138{n:08d}") for n in range(50))
    assert len(cache) == 10


# -------------------------------------------------------------------------------------------
# submit
# -------------------------------------------------------------------------------------------

CASES = [
    ["reference", "category", "confirmed_at", "phone", "cn_resident_id"],
    ["CASE-1", "identity_theft", "2026-01-10", "13812345678", RESIDENT_ID],
    ["CASE-2", "forged_documents", "2026-02-01", "13912345678", ""],
    ["CASE-3", "bogus", "2026-02-01", "13912345678", ""],
    ["CASE-4", "money_mule", "2099-01-01", "13912345678", ""],
    ["CASE-5", "money_mule", "2026-01-01", "", ""],
    ["CASE-2", "money_mule", "2026-01-01", "13712345678", ""],
    ["客户13612345678", "money_mule", "2026-01-01", "13712345678", ""],
    ["CASE-8", "money_mule", "2026-01-01", "1234", ""],
]


def _batch_keys(registry):
    return [call.headers["Idempotency-Key"] for call in registry.calls("/api/v1/cases/batch")]


def test_it_submits_valid_rows_and_reports_invalid_ones_by_number(env, tmp_path, capsys):
    source = _write(tmp_path / "cases.csv", CASES)
    code = main(["submit", str(source), "--attest"])
    captured = capsys.readouterr()

    assert code == 1
    assert sorted(env.cases) == ["CASE-1", "CASE-2"]
    for expected in [
        "row 3: category: invalid_category",
        "row 4: confirmed_at: invalid_date",
        "row 5: no_identifiers",
        "row 6: duplicate_reference_in_file",
        "row 7: reference: raw_pii_rejected",
        "row 8: phone: invalid_phone",
    ]:
        assert expected in captured.err
    assert "rows: 8, invalid rows: 6, created: 2, already submitted: 0, failed: 0" in captured.out
    body = env.calls("/api/v1/cases/batch")[0].body
    assert body["cases"][0]["attestation"] is True
    assert [i["kind"] for i in body["cases"][0]["identifiers"]] == ["phone", "cn_resident_id"]
    raw = ["13812345678", "13912345678", "13712345678", "13612345678", RESIDENT_ID]
    _assert_no_secrets([captured.out, captured.err], raw)
    _assert_no_raw_values([env.all_sent_text()], raw)


def test_it_reruns_with_the_same_idempotency_keys_and_creates_nothing_new(env, tmp_path, capsys):
    source = _write(tmp_path / "cases.csv", CASES)
    main(["submit", str(source), "--attest"])
    first_keys, first_cases = _batch_keys(env), dict(env.cases)
    capsys.readouterr()

    assert main(["submit", str(source), "--attest"]) == 1  # the invalid rows are still invalid
    captured = capsys.readouterr()
    assert _batch_keys(env) == first_keys * 2
    assert env.cases == first_cases
    assert "created: 0, already submitted: 2" in captured.out


def test_it_counts_a_live_reference_conflict_as_already_submitted(env, tmp_path, capsys):
    source = _write(tmp_path / "cases.csv", CASES[:3])
    assert main(["submit", str(source), "--attest"]) == 0
    env.idempotency.clear()  # the registry forgot the keys: the references still protect
    assert main(["submit", str(source), "--attest"]) == 0
    assert "created: 0, already submitted: 2, failed: 0" in capsys.readouterr().out
    assert len(env.cases) == 2


def test_it_loses_nothing_when_a_run_stops_halfway(env, tmp_path, capsys):
    rows = [["reference", "category", "confirmed_at", "phone"]]
    rows += [[f"BULK-{n}", "money_mule", "2026-03-01", f"137{n:08d}"] for n in range(1200)]
    source = _write(tmp_path / "bulk.csv", rows)
    env.batch_calls_allowed = 1
    assert main(["--max-retries", "0", "submit", str(source), "--attest"]) == 1
    assert len(env.cases) == 500
    assert "stopped" in capsys.readouterr().err

    env.batch_calls_allowed = None
    assert main(["submit", str(source), "--attest"]) == 0
    assert len(env.cases) == 1200
    assert "created: 700, already submitted: 500, failed: 0" in capsys.readouterr().out
    sizes = [len(call.body["cases"]) for call in env.calls("/api/v1/cases/batch")]
    assert sizes == [500, 500, 500, 500, 200]


def test_it_maps_columns_to_kinds_on_request(env, tmp_path, capsys):
    rows = [
        ["reference", "category", "confirmed_at", "手机号", "设备"],
        ["CASE-9", "account_takeover", "2026-03-01", "13812345678", "35-209900-176148-1"],
    ]
    source = _write(tmp_path / "mapped.csv", rows)
    assert (
        main(
            ["submit", str(source), "--attest", "--column", "phone=手机号", "--column", "imei=设备"]
        )
        == 0
    )
    sent = env.calls("/api/v1/cases/batch")[0].body["cases"][0]
    assert [i["kind"] for i in sent["identifiers"]] == ["phone", "imei"]
    assert sent["identifiers"][1]["token"] == env.token_of("imei", "352099001761481")
    capsys.readouterr()


def test_it_refuses_to_submit_without_attestation(env, tmp_path, capsys):
    source = _write(tmp_path / "cases.csv", CASES)
    assert main(["submit", str(source)]) == 2
    assert "--attest" in capsys.readouterr().err
    assert env.requests == []


def test_it_refuses_a_file_without_the_case_columns(env, tmp_path, capsys):
    source = _write(tmp_path / "cases.csv", [["reference", "phone"], ["CASE-1", "13812345678"]])
    assert main(["submit", str(source), "--attest"]) == 2
    assert "category" in capsys.readouterr().err
    assert env.requests == []


def test_it_runs_as_a_module_with_the_registry_url_from_the_environment(env, api_key):
    client_source = str(Path(__file__).resolve().parents[1])
    environment = {**os.environ, "REGISTRY_URL": env.url, "REGISTRY_API_KEY": api_key}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [client_source, os.environ.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-m", "registry_client", "token", "--kind", "email", "Li.Wei@Example.COM"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == env.token_of("email", "li.wei@example.com")


def test_it_reads_custodian_keys_from_the_environment_and_from_a_file(env, tmp_path, monkeypatch):
    from registry_client.cli import _custodian_keys, build_parser

    args = build_parser().parse_args(["token", "--kind", "phone", "13812345678"])
    monkeypatch.setenv("REGISTRY_CUSTODIAN_KEYS", "custodian-1=k1, custodian-2=k2")
    assert _custodian_keys(args) == {"custodian-1": "k1", "custodian-2": "k2"}
    keys = tmp_path / "keys.json"
    keys.write_text('{"custodian-3": "k3"}')
    args = build_parser().parse_args(
        ["--custodian-keys", str(keys), "token", "--kind", "phone", "13812345678"]
    )
    assert _custodian_keys(args) == {"custodian-3": "k3"}


def test_it_refuses_malformed_custodian_keys_with_a_usage_error(env, monkeypatch, capsys):
    monkeypatch.setenv("REGISTRY_CUSTODIAN_KEYS", "custodian-1")
    assert main(["token", "--kind", "phone", "13812345678"]) == 2
    assert "REGISTRY_CUSTODIAN_KEYS" in capsys.readouterr().err


# --- dispute (issue 13) ----------------------------------------------------------------------


def test_it_files_a_dispute_with_the_identifier_read_from_stdin(env, monkeypatch, capsys):
    token = env.list_identifier("phone", LISTED_PHONE, "identity_theft")
    case_id = env.listed[token][0]["case_id"]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{LISTED_PHONE}\n"))
    assert main(["dispute", case_id, "--kind", "phone", "--reason", "identity_stolen"]) == 0
    captured = capsys.readouterr()
    filed = json.loads(captured.out)
    assert filed["status"] == "open" and filed["case_id"] == case_id
    (sent,) = env.calls("/api/v1/disputes")
    assert sent.body["identifier"] == {"kind": "phone", "token": token}
    assert sent.body["reason"] == "identity_stolen"
    _assert_no_raw_values([captured.out, captured.err, env.all_sent_text()], [LISTED_PHONE])
    assert token not in captured.out + captured.err


def test_it_files_a_dispute_with_a_token_from_stdin(env, monkeypatch, capsys):
    token = env.list_identifier("phone", LISTED_PHONE, "identity_theft")
    case_id = env.listed[token][0]["case_id"]
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    argv = ["dispute", case_id, "--kind", "phone", "--reason", "not_me", "--token"]
    assert main(argv) == 0
    assert env.calls("/api/v1/oprf/evaluate") == []
    assert env.calls("/api/v1/disputes")[0].body["identifier"]["token"] == token


def test_it_exits_1_when_the_identifier_is_not_on_the_case(env, monkeypatch, capsys):
    token = env.list_identifier("phone", LISTED_PHONE, "identity_theft")
    case_id = env.listed[token][0]["case_id"]
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{VELOCITY_PHONE}\n"))
    assert main(["dispute", case_id, "--kind", "phone", "--reason", "not_me"]) == 1
    captured = capsys.readouterr()
    assert "identifier_not_on_case" in captured.err and captured.out == ""
    _assert_no_raw_values([captured.err], [VELOCITY_PHONE])


def test_it_refuses_a_bad_dispute_identifier_before_sending(env, monkeypatch, capsys):
    case_id = "6f1f6c0e-2c4b-4d7e-9d3f-123456789012"
    monkeypatch.setattr("sys.stdin", io.StringIO("12345\n"))
    assert main(["dispute", case_id, "--kind", "phone", "--reason", "not_me"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("13812345678\n"))
    argv = ["dispute", case_id, "--kind", "phone", "--reason", "not_me", "--token"]
    assert main(argv) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["dispute", case_id, "--kind", "phone", "--reason", "not_me"]) == 2
    captured = capsys.readouterr()
    _assert_no_raw_values([captured.out, captured.err], ["13812345678"])
    assert env.requests == []

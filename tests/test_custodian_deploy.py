"""The deploy kit's custodian (compose service and systemd unit) holds one share and nothing
else: no seed, no pepper; the demo command and the ceremony exist as documented."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def test_it_ships_a_custodian_compose_service_with_only_a_share():
    compose = yaml.safe_load((DEPLOY / "docker-compose.custodian.yml").read_text())
    service = compose["services"]["custodian"]
    assert service["environment"]["REGISTRY_ROLE"] == "custodian"
    assert set(service["secrets"]) == {"django_secret_key", "custodian_share", "postgres_password"}
    text = (DEPLOY / "docker-compose.custodian.yml").read_text()
    assert "OPRF_SEED" not in text and "PEPPER" not in text


def test_it_ships_a_custodian_systemd_unit_with_only_a_share():
    unit = (DEPLOY / "systemd" / "registry-custodian.service").read_text()
    assert "Environment=REGISTRY_ROLE=custodian" in unit
    assert "REGISTRY_OPRF_SHARE_FILE=%d/registry_oprf_share" in unit
    assert "OPRF_SEED" not in unit and "PEPPER" not in unit


def test_it_has_a_make_target_for_the_custodian_demo():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ncustodians:" in makefile and "scripts/custodians_demo.py" in makefile

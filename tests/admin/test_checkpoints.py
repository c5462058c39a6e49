"""The audit chain's signed checkpoints in the admin: on the dashboard, on the verify page and
as a download an officer keeps outside the registry."""

import json

import pysodium
import pytest
from django.utils import timezone

from registry.models import AuditSeal
from registry.services.audit import audit_checkpoint, audit_seal, checkpoint_parse
from tests.support.admin import ADMIN
from tests.support.audit import tampering

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_the_newest_checkpoint(world, officer):
    audit_seal()
    checkpoint = audit_checkpoint(force=True)
    html = officer.get(ADMIN).content.decode()
    assert 'id="tile-checkpoint"' in html
    assert f"seal {checkpoint.seq}" in html and checkpoint.key_id in html
    assert "/admin/registry/auditevent/checkpoint/" in html


def test_the_dashboard_raises_the_alarm_without_a_recent_checkpoint(world, officer):
    board = officer.get(ADMIN).context["dashboard"]
    assert board["checkpoint"]["checkpoint"] is None and board["checkpoint"]["alarm"]


def test_an_officer_downloads_the_newest_checkpoint_and_it_verifies(world, auditor):
    assert auditor.get(f"{ADMIN}registry/auditevent/checkpoint/").status_code == 404
    audit_seal()
    checkpoint = audit_checkpoint(force=True)
    response = auditor.get(f"{ADMIN}registry/auditevent/checkpoint/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    document = json.loads(response.content)
    head = AuditSeal.objects.order_by("-seq").first()
    assert (document["seq"], document["hash"]) == (head.seq, head.hash)
    trusted = checkpoint_parse(
        response.content.decode(), trusted_public_keys={checkpoint.public_key}
    )
    assert trusted.seq == checkpoint.seq
    pysodium.crypto_sign_verify_detached(
        bytes.fromhex(document["signature"]),
        document["signed_message"].encode(),
        bytes.fromhex(document["public_key"]),
    )


def test_the_verify_page_shows_a_checkpoint_the_chain_no_longer_matches(world, officer):
    audit_seal()
    checkpoint = audit_checkpoint(force=True)
    response = officer.get(f"{ADMIN}registry/auditevent/verify/")
    assert response.context["result"].ok and response.context["result"].checkpoints == 1
    assert 'id="verify-checkpoint"' in response.content.decode()
    with tampering():
        AuditSeal.objects.filter(seq=checkpoint.seq).update(
            hash="ab" * 32, sealed_at=timezone.now()
        )
    response = officer.get(f"{ADMIN}registry/auditevent/verify/")
    assert not response.context["result"].ok
    assert "Broken" in response.content.decode()

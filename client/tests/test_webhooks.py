"""verify_webhook against the Standard Webhooks test vector, and its refusals."""

import pytest

from registry_client import WebhookVerificationError, verify_webhook
from registry_client.webhooks import sign_webhook

# The reference vector of the Standard Webhooks libraries (and Svix's documentation).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the public test vector
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = '{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = SIGNATURE, timestamp: int = TIMESTAMP) -> dict:
    return {
        "Webhook-Id": MSG_ID,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature,
    }


def test_it_signs_like_the_standard_webhooks_reference():
    assert sign_webhook(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_it_verifies_a_delivery_and_returns_its_body():
    assert verify_webhook(headers(), BODY.encode(), SECRET, now=TIMESTAMP + 10) == {
        "test": 2432232314
    }
    # One of several signatures (a secret being rotated) is enough.
    assert verify_webhook(headers("v1,bm90IGl0 " + SIGNATURE), BODY, SECRET, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("hdrs", "body", "now"),
    [
        (headers("v1,Zm9vYmFy"), BODY, TIMESTAMP),  # wrong signature
        (headers(), BODY.replace("2432232314", "2432232315"), TIMESTAMP),  # body changed
        (headers(), BODY, TIMESTAMP + 301),  # too old: a replay
        (headers(), BODY, TIMESTAMP - 301),  # from the future
        ({"webhook-id": MSG_ID}, BODY, TIMESTAMP),  # headers missing
        (headers(SIGNATURE.replace("v1,", "v2,")), BODY, TIMESTAMP),  # unknown scheme
    ],
)
def test_it_refuses_forged_altered_or_replayed_deliveries(hdrs, body, now):
    with pytest.raises(WebhookVerificationError):
        verify_webhook(hdrs, body, SECRET, now=now)


def test_it_matches_the_standardwebhooks_package_when_installed():
    standardwebhooks = pytest.importorskip("standardwebhooks")
    import time

    now = int(time.time())
    body = '{"type": "case.reported"}'
    theirs = standardwebhooks.Webhook(SECRET)
    hdrs = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(now),
        "webhook-signature": sign_webhook(SECRET, MSG_ID, now, body),
    }
    theirs.verify(body, hdrs)  # raises if our signature is not theirs
    from datetime import UTC, datetime

    signed = theirs.sign(MSG_ID, datetime.fromtimestamp(now, tz=UTC), body)
    assert verify_webhook({**hdrs, "webhook-signature": signed}, body, SECRET, now=now)

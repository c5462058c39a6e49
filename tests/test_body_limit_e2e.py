"""An oversized body against the real server (gunicorn, no nginx in front): the client gets
413 every time, never a broken pipe or a connection reset. Before the fix the middleware
answered without reading the body and gunicorn closed the socket with the rest of the upload
unread, so the kernel reset the connection; a client still sending saw EPIPE/ECONNRESET
instead of the answer, depending on timing."""

import http.client
import json
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.support.servers import gunicorn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ATTEMPTS = 12


def post(base: str, body: bytes, **headers: str) -> tuple[int, dict]:
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/lookups",
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_it_answers_413_to_every_oversized_body_without_resetting_the_connection():
    limit = settings.REGISTRY_MAX_BODY_BYTES
    bodies = [b"x" * (limit + 1), b"x" * (limit + 512 * 1024), b"x" * (3 * limit)]
    outcomes = []
    with gunicorn(workers=2) as base:
        for attempt in range(ATTEMPTS):
            body = bodies[attempt % len(bodies)]
            try:
                status, problem = post(base, body)
                outcomes.append((status, problem.get("code")))
            except (BrokenPipeError, ConnectionResetError) as exc:
                outcomes.append((type(exc).__name__, len(body)))
        # The server still serves a body that fits.
        status, _ = post(base, b"{}")
    assert outcomes == [(413, "payload_too_large")] * ATTEMPTS
    assert status == 401  # reached authentication: no key given

"""Webhook endpoints and deliveries (api.md "Monitoring"): the secret shown once, Standard
Webhooks signatures verified by a real receiver process, at-least-once delivery with backoff,
an endpoint given up after 24 hours marked failing, a worker killed mid-delivery losing
nothing, and deliveries refused to loopback/private addresses at connect time."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from registry.models import Alert, AuditEvent, WebhookDelivery, WebhookEndpoint
from registry.services import webhook_http
from registry.services.alerts import alerts_for_cases
from registry.services.webhooks import (
    LEASE,
    webhook_deliveries_sweep,
    webhook_delivery_attempt,
)
from tests.support.api import assert_problem
from tests.support.factories import fresh_phone, identifier, submit_case
from tests.support.monitoring import ALERTS, run_alert_tasks, watch
from tests.support.servers import free_port
from tests.support.workers import celery_worker_process, unique_queue, wait_for

ENDPOINTS = "/api/v1/webhook-endpoints"
ROOT = Path(__file__).resolve().parent.parent
EVENTS = ["case.reported", "case.cleared", "velocity.exceeded"]


@pytest.fixture
def local_receivers(settings):
    settings.REGISTRY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@contextlib.contextmanager
def receiver(tmp_path: Path, secret: str, *, statuses: str = "200", hang_first: float = 0):
    """A real receiver process on a free loopback port; yields (url, read_log)."""
    port, log = free_port(), tmp_path / f"receiver-{time.monotonic_ns()}.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "webhook_receiver.py"),
            str(port),
            str(log),
            "--statuses",
            statuses,
            "--hang-first",
            str(hang_first),
        ],
        env={**os.environ, "WEBHOOK_SECRET": secret},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"

        def read_log() -> list[dict]:
            if not log.exists():
                return []
            return [json.loads(line) for line in log.read_text().splitlines()]

        yield f"http://127.0.0.1:{port}/hooks", read_log
    finally:
        process.kill()
        process.wait(10)


def create_endpoint(party, url: str, events=None) -> dict:
    response = party.post(ENDPOINTS, {"url": url, "events": events or EVENTS})
    assert response.status_code == 201, response.content
    return response.json()


def alert_for(world) -> Alert:
    """Bob watches a phone; Alice reports a case on it; the fan-out creates Bob's alert (and
    its deliveries)."""
    phone = identifier("phone", fresh_phone())
    watch(world.bob, [phone])
    submit_case(world.alice, identifiers=[phone])
    run_alert_tasks()
    return Alert.objects.get(member=world.bob.member)


# --- endpoints -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_the_secret_once_and_hides_endpoints_from_other_members(world, local_receivers):
    created = create_endpoint(world.bob, "https://hooks.bob-loans.example/registry")
    assert created["secret"].startswith("whsec_") and created["failing"] is False
    listed = world.bob.get(ENDPOINTS).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert world.carol.get(ENDPOINTS).json() == []
    for call in (
        lambda p: p.client.delete(f"{ENDPOINTS}/{created['id']}"),
        lambda p: p.post(f"{ENDPOINTS}/{created['id']}/test"),
    ):
        assert_problem(call(world.carol), 404, "not_found")
    assert world.bob.client.delete(f"{ENDPOINTS}/{created['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"webhook_endpoint.created", "webhook_endpoint.deleted"} <= actions


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.bob-loans.example/x", "https_required"),
        ("https://127.0.0.1/x", "forbidden_address"),
        ("https://10.1.2.3/x", "forbidden_address"),
        ("https://169.254.169.254/latest/meta-data", "forbidden_address"),
        ("https://[::1]/x", "forbidden_address"),
        ("https://[::ffff:127.0.0.1]/x", "forbidden_address"),
        ("https://localhost/x", "forbidden_address"),
        ("https://user:pw@hooks.example/x", "invalid_url"),
        ("not a url", "invalid_url"),
    ],
)
def test_it_refuses_endpoints_that_are_not_https_or_point_inside(world, url, code):
    problem = assert_problem(
        world.bob.post(ENDPOINTS, {"url": url, "events": EVENTS}), 400, "validation_error"
    )
    assert problem["errors"][0]["code"] == code
    assert url not in json.dumps(problem)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_it_refuses_unknown_event_types(world):
    response = world.bob.post(ENDPOINTS, {"url": "https://hooks.example/x", "events": ["all"]})
    assert_problem(response, 400, "validation_error")


# --- the connect-time guard --------------------------------------------------------------


def test_a_name_that_resolves_inside_is_refused_when_connecting(monkeypatch, tmp_path):
    """DNS rebinding: the name passed every check at creation; when the delivery connects it
    resolves to loopback, where a receiver listens. Nothing reaches it."""
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "hooks.rebind.example":
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with receiver(tmp_path, "whsec_" + "A" * 32) as (url, read_log):
        port = url.split(":")[2].split("/")[0]
        target = f"https://hooks.rebind.example:{port}/hooks"
        assert webhook_http.url_problem(target) is None  # a name: judged when connecting
        result = webhook_http.send(target, b"{}", {})
        assert (result.status, result.error) == (None, "blocked_address")
        time.sleep(0.2)
        assert read_log() == []


INSIDE = (
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 - an address judged, not bound
    "::1",
    "fe80::1",
    "fd00:ec2::254",
    "::ffff:10.0.0.1",
    "224.0.0.1",
)


def test_it_judges_addresses_as_the_internet_sees_them():
    for inside in INSIDE:
        assert webhook_http.address_is_forbidden(inside), inside
    for outside in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert not webhook_http.address_is_forbidden(outside), outside


# --- deliveries to a real receiver -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_real_receiver_gets_signed_deliveries_that_verify(world, local_receivers, tmp_path):
    # The receiver needs the endpoint's secret, so the endpoint comes first and gets the
    # receiver's URL once it listens.
    endpoint = create_endpoint(world.bob, "http://127.0.0.1:1/placeholder")
    with receiver(tmp_path, endpoint["secret"]) as (url, read_log):
        WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(url=url)
        alert = alert_for(world)
        webhook_deliveries_sweep(inline=True)
        test = world.bob.post(f"{ENDPOINTS}/{endpoint['id']}/test")
        assert test.status_code == 202
        webhook_deliveries_sweep(inline=True)
        records = wait_for(lambda: len(read_log()) >= 2 and read_log(), what="two deliveries")
    assert [(r["id"], r["type"], r["verified"]) for r in records] == [
        (str(alert.pk), "case.reported", True),
        (test.json()["webhook_id"], "webhook.test", True),
    ]
    assert WebhookDelivery.objects.filter(delivered_at__isnull=False).count() == 2


@pytest.mark.django_db(transaction=True)
def test_500_twice_then_200_gives_one_alert_id_three_times_and_the_member_sees_it_once(
    world, local_receivers, tmp_path
):
    endpoint = create_endpoint(world.bob, "http://127.0.0.1:1/placeholder")
    with receiver(tmp_path, endpoint["secret"], statuses="500,500,200") as (url, read_log):
        WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(url=url)
        alert = alert_for(world)
        (delivery,) = WebhookDelivery.objects.all()
        now = timezone.now()
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == "retry"
        # Not due again before its backoff (5 s) has passed.
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == "not_due"
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now + LEASE) == "retry"
        later = now + LEASE + timedelta(minutes=6)
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=later) == "delivered"
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=later + LEASE) == "not_due"
        records = read_log()
    assert [r["id"] for r in records] == [str(alert.pk)] * 3
    assert all(r["verified"] for r in records)
    assert [r["status"] for r in records] == [500, 500, 200]
    assert Alert.objects.count() == 1
    pulled = world.bob.get(ALERTS).json()["results"]
    assert [a["id"] for a in pulled] == [str(alert.pk)]
    bobs = WebhookEndpoint.objects.get()
    assert bobs.failing_since is None and bobs.consecutive_failures == 0


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_failing_for_24_hours_is_given_up_and_marked_failing(
    world, local_receivers, tmp_path
):
    endpoint = create_endpoint(world.bob, "http://127.0.0.1:1/placeholder")
    with receiver(tmp_path, endpoint["secret"], statuses="503") as (url, read_log):
        WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(url=url)
        alert_for(world)
        (delivery,) = WebhookDelivery.objects.all()
        now, outcomes = timezone.now(), []
        while not outcomes or outcomes[-1] == "retry":
            due = WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at
            now = max(now, due)
            outcomes.append(webhook_delivery_attempt(delivery_id=delivery.pk, now=now))
        attempts = len(read_log())
    assert outcomes[-1] == "gave_up" and attempts == len(outcomes) == 8
    delivery.refresh_from_db()
    assert delivery.gave_up_at - delivery.created_at >= timedelta(hours=24)
    bobs = WebhookEndpoint.objects.get()
    assert bobs.failing_since is not None
    assert AuditEvent.objects.filter(action="webhook_endpoint.failing").count() == 1
    listed = world.bob.get(ENDPOINTS).json()
    assert listed[0]["failing"] is True


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing(world, local_receivers, tmp_path):
    from consortium.celery import app

    endpoint = create_endpoint(world.bob, "http://127.0.0.1:1/placeholder")
    env = {"REGISTRY_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    with receiver(tmp_path, endpoint["secret"], hang_first=30) as (url, read_log):
        WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(url=url)
        alert = alert_for(world)
        (delivery,) = WebhookDelivery.objects.all()
        with celery_worker_process(queue=unique_queue("webhooks"), env=env) as worker:
            app.send_task(
                "registry.webhooks.deliver",
                kwargs={"delivery_ids": [delivery.pk]},
                queue=worker.queue,
            )
            wait_for(lambda: len(read_log()) == 1, what="the worker's request to arrive")
            worker.kill()  # mid-delivery: the receiver has not answered
        delivery.refresh_from_db()
        assert delivery.delivered_at is None and delivery.attempts == 1
        # The sweep after the lease (what beat runs every 30 s) delivers it.
        summary = webhook_deliveries_sweep(now=timezone.now() + LEASE, inline=True)
        assert summary.get("delivered") == 1
        records = read_log()
    assert [r["id"] for r in records] == [str(alert.pk)] * 2
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempts == 2


@pytest.mark.django_db
def test_the_fan_out_queues_one_delivery_per_endpoint_that_wants_the_type(world):
    create_endpoint(world.bob, "https://hooks.bob-loans.example/all")
    create_endpoint(world.bob, "https://hooks.bob-loans.example/velocity", ["velocity.exceeded"])
    create_endpoint(world.carol, "https://hooks.carol.example/all")
    alert = alert_for(world)
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.msg_id == str(alert.pk) and delivery.endpoint.url.endswith("/all")
    assert delivery.data["watch"]["label"] == "LOAN-0001"
    assert "token" not in json.dumps(delivery.data)
    assert alerts_for_cases(case_ids=[alert.case_id]) == 0  # a repeat: nothing more
    assert WebhookDelivery.objects.count() == 1


def test_the_registry_signs_like_the_standard_webhooks_reference():
    """The specification's test vector (the same one client/tests/test_webhooks.py checks the
    member-side verifier with)."""
    from registry.services.webhooks import sign

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )

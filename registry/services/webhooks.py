"""Webhook endpoints and the at-least-once delivery of alerts to them (api.md "Monitoring").

Deliveries follow the Standard Webhooks specification: headers `webhook-id` (the alert id),
`webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.
{body}">` keyed with the base64-decoded part of the endpoint's `whsec_` secret: `sign`,
checked in the tests against the specification's test vector and against the member-side
`registry_client.verify_webhook`), body `{"type", "timestamp", "data": <alert>}`.

Life of a delivery. A new alert gets one WebhookDelivery row per endpoint of its member that
wants its type, in the alert's own transaction, and a task is queued through the outbox on
commit. `webhook_delivery_attempt` then, for a due delivery:

1. takes it in a short transaction (FOR UPDATE SKIP LOCKED: two workers never send the same
   delivery at once) and moves `next_attempt_at` one LEASE ahead, then commits;
2. sends it once, outside any transaction (10 s timeout, no redirects, guarded addresses:
   services/webhook_http.py);
3. records the outcome: delivered, or the next attempt after an exponential backoff
   (BACKOFF); once the first attempt is more than 24 hours old and the schedule is spent,
   the delivery is given up and the endpoint marked failing (audited; officers see it).

A worker killed between 1 and 3 leaves the delivery due again when the lease ends, and the
sweep job (every 30 s) picks it up: nothing is lost, and the receiver may see the same
webhook-id twice (which is why it is the receiver's idempotency key).
"""

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.actors import Actor
from registry.audit_actions import AuditAction
from registry.errors import Conflict, FieldError, NotFound, ValidationFailed
from registry.models import Alert, AlertType, WebhookDelivery, WebhookEndpoint
from registry.selectors.watches import alert_body
from registry.services import webhook_http
from registry.services.audit import audit_record
from registry.services.outbox import outbox_enqueue

TASK_DELIVER = "registry.webhooks.deliver"
EVENT_TYPES = tuple(AlertType.values)
TEST_EVENT = "webhook.test"
MAX_ENDPOINTS_PER_MEMBER = 10
# Waits after attempt 1, 2, ...: Standard Webhooks' suggested schedule; together more than 24
# hours (27 h 35 min) before the delivery is given up.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
RETRY_FOR_AT_LEAST = timedelta(hours=24)
# How long a worker holds a delivery it is sending: past the 10 s timeout with a margin.
LEASE = timedelta(seconds=webhook_http.TIMEOUT_SECONDS + 50)
DELIVERED_KEPT = timedelta(days=7)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value of one delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


@transaction.atomic
def webhook_endpoint_create(*, actor: Actor, url: str, events: list[str]) -> WebhookEndpoint:
    """A new endpoint of the calling member; its `secret` is returned this once."""
    if not actor.is_member:
        raise NotFound(_("Only members have webhook endpoints."))
    problem = webhook_http.url_problem(url)
    if problem is not None:
        raise ValidationFailed(
            _("This URL cannot receive webhooks; see errors."),
            [FieldError("/url", problem, _url_message(problem))],
        )
    unknown = [e for e in events if e not in EVENT_TYPES]
    if not events or unknown:
        raise ValidationFailed(
            _("Choose one or more event types; see errors."),
            [FieldError("/events", "invalid_choice", _("Unknown or missing event type."))],
        )
    if WebhookEndpoint.objects.filter(member_id=actor.member_id).count() >= (
        MAX_ENDPOINTS_PER_MEMBER
    ):
        raise Conflict(
            _("A member has at most %(n)d webhook endpoints.") % {"n": MAX_ENDPOINTS_PER_MEMBER}
        )
    endpoint = WebhookEndpoint.objects.create(
        member_id=actor.member_id,
        url=url,
        events=sorted(set(events)),
        secret=new_secret(),
        created_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_CREATED,
        object_type="webhook_endpoint",
        object_id=endpoint.pk,
        details={"events": endpoint.events},  # not the URL: the member's own infrastructure
    )
    return endpoint


def _url_message(problem: str) -> str:
    return {
        "https_required": _("Webhook URLs must be https."),
        "forbidden_address": _("Webhooks are not sent to local or private addresses."),
    }.get(problem, _("Not a valid URL."))


def _own_endpoint(actor: Actor, endpoint_id) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(
        pk=endpoint_id, member_id=actor.member_id if actor.is_member else None
    ).first()
    if endpoint is None:
        raise NotFound(_("No such webhook endpoint."))
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, actor: Actor, endpoint_id) -> None:
    endpoint = _own_endpoint(actor, endpoint_id)
    endpoint.delete()  # its pending deliveries with it
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_DELETED,
        object_type="webhook_endpoint",
        object_id=endpoint_id,
    )


@transaction.atomic
def webhook_endpoint_test(*, actor: Actor, endpoint_id) -> WebhookDelivery:
    """Queue a `webhook.test` event to one of the member's endpoints."""
    endpoint = _own_endpoint(actor, endpoint_id)
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        msg_id=f"test_{secrets.token_hex(12)}",
        event_type=TEST_EVENT,
        data={"endpoint_id": str(endpoint.pk)},
        event_at=now,
        created_at=now,
        next_attempt_at=now,
    )
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_TESTED,
        object_type="webhook_endpoint",
        object_id=endpoint.pk,
        details={"msg_id": delivery.msg_id},
    )
    outbox_enqueue(TASK_DELIVER, delivery_ids=[delivery.pk])
    return delivery


def deliveries_create(*, alert_ids: list) -> int:
    """In the alerts' transaction: one delivery per (alert, endpoint that wants its type),
    queued on commit. Returns how many."""
    alerts = list(Alert.objects.filter(pk__in=alert_ids))
    members = {alert.member_id for alert in alerts}
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(member_id__in=members):
        endpoints.setdefault(endpoint.member_id, []).append(endpoint)
    now = timezone.now()
    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            msg_id=str(alert.pk),
            event_type=alert.type,
            data=alert_body(alert),
            event_at=alert.created_at,
            created_at=now,
            next_attempt_at=now,
        )
        for alert in alerts
        for endpoint in endpoints.get(alert.member_id, [])
        if alert.type in endpoint.events
    ]
    if not rows:
        return 0
    created = WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    ids = list(
        WebhookDelivery.objects.filter(
            msg_id__in=[str(pk) for pk in alert_ids], delivered_at__isnull=True
        ).values_list("pk", flat=True)
    )
    outbox_enqueue(TASK_DELIVER, delivery_ids=ids)
    return len(created)


def delivery_payload(delivery: WebhookDelivery, timestamp: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": delivery.event_type,
            "timestamp": timezone.localtime(delivery.event_at).isoformat(),
            "data": delivery.data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "consortium-registry-webhooks/1",
        "webhook-id": delivery.msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(delivery.endpoint.secret, delivery.msg_id, timestamp, body),
    }
    return body, headers


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """One attempt at one delivery if it is due (see the module's docstring); returns what
    happened: not_due, delivered, retry or gave_up."""
    delivery = _take(delivery_id, now or timezone.now())
    if delivery is None:
        return "not_due"
    started = timezone.now()
    body, headers = delivery_payload(delivery, int(started.timestamp()))
    result = webhook_http.send(delivery.endpoint.url, body, headers)
    return _record(delivery.pk, result, now or timezone.now())


@transaction.atomic
def _take(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    delivery = (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("endpoint")
        .filter(
            pk=delivery_id,
            delivered_at__isnull=True,
            gave_up_at__isnull=True,
            next_attempt_at__lte=now,
        )
        .first()
    )
    if delivery is None:
        return None
    delivery.next_attempt_at = now + LEASE
    delivery.attempts += 1
    delivery.save(update_fields=["next_attempt_at", "attempts"])
    return delivery


@transaction.atomic
def _record(delivery_id: int, result: webhook_http.SendResult, now: datetime) -> str:
    delivery = (
        WebhookDelivery.objects.select_for_update()
        .select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.delivered_at is not None:
        return "delivered"
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    delivery.last_status, delivery.last_error = result.status, result.error
    if result.ok:
        delivery.delivered_at = now
        endpoint.last_success_at, endpoint.consecutive_failures = now, 0
        endpoint.failing_since = None
        outcome = "delivered"
    else:
        endpoint.last_failure_at = now
        endpoint.consecutive_failures += 1
        spent = delivery.attempts > len(BACKOFF)
        if spent and now - delivery.created_at >= RETRY_FOR_AT_LEAST:
            delivery.gave_up_at = now
            outcome = "gave_up"
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                audit_record(
                    actor=Actor.system(),
                    action=AuditAction.WEBHOOK_ENDPOINT_FAILING,
                    object_type="webhook_endpoint",
                    object_id=endpoint.pk,
                    details={"msg_id": delivery.msg_id, "attempts": delivery.attempts},
                )
        else:
            wait = BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
            delivery.next_attempt_at = now + wait
            outcome = "retry"
    delivery.save(
        update_fields=["last_status", "last_error", "delivered_at", "gave_up_at", "next_attempt_at"]
    )
    endpoint.save(
        update_fields=[
            "last_success_at",
            "last_failure_at",
            "consecutive_failures",
            "failing_since",
        ]
    )
    return outcome


def webhook_deliveries_sweep(
    *, now: datetime | None = None, limit: int = 500, inline: bool = False
) -> dict:
    """Queue (or, `inline`, attempt here) every due delivery: retries, and deliveries whose
    worker died mid-delivery. Then forget deliveries delivered over a week ago."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            delivered_at__isnull=True, gave_up_at__isnull=True, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    outcomes: dict[str, int] = {}
    if inline:
        for delivery_id in due:
            outcome = webhook_delivery_attempt(delivery_id=delivery_id, now=now)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    else:
        with transaction.atomic():
            for delivery_id in due:  # one task each: a slow endpoint holds up only its own
                outbox_enqueue(TASK_DELIVER, delivery_ids=[delivery_id])
    deleted, _per_model = WebhookDelivery.objects.filter(
        delivered_at__lt=now - DELIVERED_KEPT
    ).delete()
    return {"due": len(due), **outcomes, "delivered_rows_deleted": deleted}

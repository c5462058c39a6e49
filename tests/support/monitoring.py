"""Watches and alerts, as the monitoring tests use them."""

from registry.models import OutboxTask
from registry.services.alerts import alerts_for_cases

WATCHES = "/api/v1/watches"
ALERTS = "/api/v1/alerts"
ALERT_TASK = "registry.alerts.for_cases"


def watch_body(identifiers, **overrides) -> dict:
    return {
        "identifiers": identifiers,
        "purpose": "loan_monitoring",
        "consent_reference": "CONSENT-2026-001",
        "label": "LOAN-0001",
        **overrides,
    }


def watch(party, identifiers, **overrides) -> list[dict]:
    response = party.post(WATCHES, watch_body(identifiers, **overrides))
    assert response.status_code == 201, response.content
    return response.json()["watches"]


def run_alert_tasks() -> int:
    """What a worker does with the fan-out tasks of the outbox: run each one (no worker runs
    in these tests; in a `db` test nothing even commits, so nothing was published). Every
    task so far runs again, which is harmless: each reconciles its cases with their state
    now (services/alerts.py), so only what changed since makes alerts."""
    return sum(
        alerts_for_cases(**row.kwargs)
        for row in OutboxTask.objects.filter(task=ALERT_TASK).order_by("pk")
    )

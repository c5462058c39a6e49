"""Dispute reminders and alerts (e-mail). Thin: ids in, one idempotent service call; the
services send each mail at most once, so a task published twice is harmless."""

from celery import shared_task

from registry.services import notifications
from registry.services.jobs import job_execute


@shared_task(name="registry.disputes.sweep_deadlines")
def sweep_deadlines() -> dict:
    """Beat job: mark overdue disputes and ask for the reminders and alerts still due
    (through job_execute, so that the run shows in the admin's job health like the others)."""
    return job_execute("dispute_deadlines")


@shared_task(name="registry.disputes.send_reminder")
def send_reminder(dispute_id: str) -> int:
    return notifications.dispute_reminder_send(dispute_id=dispute_id)


@shared_task(name="registry.disputes.send_overdue_alert")
def send_overdue_alert(dispute_id: str) -> int:
    return notifications.dispute_overdue_alert_send(dispute_id=dispute_id)


@shared_task(name="registry.disputes.send_filed_notice")
def send_filed_notice(dispute_id: str) -> int:
    return notifications.dispute_filed_notice_send(dispute_id=dispute_id)


@shared_task(name="registry.disputes.send_decision_notice")
def send_decision_notice(dispute_id: str) -> int:
    return notifications.dispute_decision_notice_send(dispute_id=dispute_id)

"""Dispute reminders and alerts (e-mail)."""

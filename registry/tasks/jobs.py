"""Housekeeping jobs (expiry, retention, sealing, outbox, pepper rotation)."""

"""The Celery application. Tasks live in registry/tasks.py; the schedule in the database
(django-celery-beat), seeded with defaults by a migration."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

app = Celery("consortium")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

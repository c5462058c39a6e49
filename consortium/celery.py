"""The Celery application. Tasks live in registry/tasks.py; the schedule in the database
(django-celery-beat), seeded with defaults by a migration."""

import os
import sys
from pathlib import Path

from celery import Celery


def celery_role(argv: list[str]) -> str | None:
    """ "worker" or "beat" when this process is `celery ... worker|beat`, else None."""
    program = argv[0] if argv else ""
    if Path(program).name != "celery" and not program.endswith("celery/__main__.py"):
        return None
    return next((word for word in argv[1:] if word in ("worker", "beat")), None)


# Before the settings are read: a worker or beat never reads the OPRF seed (settings.py,
# REGISTRY_PROCESS), whatever its environment says.
if role := celery_role(sys.argv):
    os.environ["REGISTRY_PROCESS"] = role

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

app = Celery("consortium")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

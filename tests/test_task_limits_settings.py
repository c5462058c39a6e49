"""The waits that recover a dead worker's task are set, and in the right order: the task time
limit < Redis's visibility timeout < the outbox's republish delay. Settings read in a fresh
process, as a deployment would."""

import json
import os
import subprocess
import sys

from tests.support.workers import ROOT

PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.CELERY_TASK_TIME_LIMIT, s.CELERY_TASK_SOFT_TIME_LIMIT, "
    "s.CELERY_BROKER_TRANSPORT_OPTIONS.get('visibility_timeout'), "
    "s.REGISTRY_OUTBOX_REPUBLISH_SECONDS]))"
)
VARIABLES = (
    "REGISTRY_TASK_TIME_LIMIT_SECONDS",
    "CELERY_VISIBILITY_TIMEOUT",
    "REGISTRY_OUTBOX_REPUBLISH_SECONDS",
)


def read_settings(**overrides: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "REGISTRY_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "consortium.settings",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
    }
    for name in VARIABLES:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**env, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_sets_a_visibility_timeout_longer_than_the_longest_task():
    result = read_settings()
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [600, 570, 900, 960]
    result = read_settings(REGISTRY_TASK_TIME_LIMIT_SECONDS="1200")
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1200, 1170, 1500, 1560]


def test_it_refuses_a_visibility_timeout_a_task_could_outlast():
    for overrides in (
        {"CELERY_VISIBILITY_TIMEOUT": "600"},  # = the time limit: a running task handed out
        {"CELERY_VISIBILITY_TIMEOUT": "900", "REGISTRY_OUTBOX_REPUBLISH_SECONDS": "900"},
    ):
        result = read_settings(**overrides)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert "CELERY_VISIBILITY_TIMEOUT" in result.stderr

"""gunicorn configuration for the registry's web nodes.

    gunicorn --config deploy/gunicorn.conf.py consortium.wsgi:application

Everything an operator tunes comes from the environment (see deploy/.env.example):
GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_FORWARDED_ALLOW_IPS, GUNICORN_MAX_REQUESTS.

The access log is one JSON object per line, like the application's own log. It names the
path WITHOUT the query string (subject-access lookups carry a token there) and never a
request body, a header value other than the request id, or a credential.
"""

import json
import multiprocessing
import os
import time

from gunicorn.glogging import Logger


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")]
workers = _env_int("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1)
threads = _env_int("GUNICORN_THREADS", 1)
# One thread per worker: plain sync workers. More: gthread, which also keeps connections alive.
worker_class = "gthread" if threads > 1 else "sync"
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then so that a slow leak cannot grow without bound.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = max_requests // 10
# Load Django once in the master, fork the workers from it (faster start, shared pages).
preload_app = True
# Heartbeat files in memory: a container's /tmp may be a slow overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# Trust X-Forwarded-* only from the proxy in front (nginx on the same host by default).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proxy_allow_ips = forwarded_allow_ips
# Requests larger than these are refused by gunicorn itself before Django sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "registry-web"
# gunicorn >= 24's runtime control socket: off unless asked for, because its default path is
# per user, so two servers on one host (blue/green, tests) would fight over it.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True


class JsonAccessLogger(Logger):
    """Access log lines as JSON. Built from the request line's path, never its query string."""

    def access(self, resp, req, environ, request_time):
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        headers = {name.lower(): value for name, value in (resp.headers or [])}
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "logger": "gunicorn.access",
            "remote": environ.get("REMOTE_ADDR", ""),
            "method": environ.get("REQUEST_METHOD", ""),
            "path": environ.get("PATH_INFO", ""),
            "status": _status_code(resp.status),
            "bytes": getattr(resp, "sent", 0),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "request_id": headers.get("x-request-id", ""),
        }
        try:
            self.access_log.info(json.dumps(entry, ensure_ascii=False))
        except Exception:  # noqa: BLE001 - a log line must never break a response
            self.exception("access log failed")


def _status_code(status) -> int:
    try:
        return int(str(status).split(None, 1)[0])
    except (TypeError, ValueError):
        return 0


logger_class = JsonAccessLogger


def pre_fork(server, worker):
    """Never hand a database connection opened in the master (preload) to a worker: two
    processes on one socket corrupt each other's conversations."""
    from django.db import connections

    connections.close_all()

#!/usr/bin/env python3
"""Run the web server, a Celery worker and Celery beat together in the foreground.
Ctrl-C (or SIGTERM) stops all three; if one dies, the others are stopped too."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BIND = os.environ.get("REGISTRY_DEV_BIND", "127.0.0.1:8000")

COMMANDS = {
    "web": [sys.executable, "manage.py", "runserver", BIND, "--noreload"],
    "worker": [str(BIN / "celery"), "-A", "consortium", "worker", "--pool=solo", "--loglevel=INFO"],
    "beat": [
        str(BIN / "celery"),
        "-A",
        "consortium",
        "beat",
        "--loglevel=INFO",
        "--schedule",
        str(ROOT / "var" / "celerybeat-schedule"),
    ],
}


def main() -> int:
    processes = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in COMMANDS.items()}
    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; stopping the rest",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

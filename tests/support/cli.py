"""The member-side CLI as a real process, against a registry at `base`."""

import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "registry-client")


def run_cli(base: str, key: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_URL": base, "REGISTRY_API_KEY": key}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600)

#!/usr/bin/env python3
"""Print the current TOTP code of a development officer (for `make run` demos only)."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

import dev_env

dev_env.load()  # `make run` printed this command: it must work from a fresh shell

import django  # noqa: E402

django.setup()

from django_otp.oath import totp  # noqa: E402
from django_otp.plugins.otp_totp.models import TOTPDevice  # noqa: E402

device = TOTPDevice.objects.get(user__username=sys.argv[1] if len(sys.argv) > 1 else "officer")
print(
    f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    f"  (valid for {device.step - int(time.time()) % device.step} s)"
)

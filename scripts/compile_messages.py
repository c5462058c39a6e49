#!/usr/bin/env python3
"""Compile every registry/locale/*/LC_MESSAGES/*.po to .mo with polib (pure Python), so the
build needs no system gettext. The .mo files are build output and are not committed."""

from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent

for po_path in sorted((ROOT / "registry" / "locale").glob("*/LC_MESSAGES/*.po")):
    polib.pofile(str(po_path)).save_as_mofile(str(po_path.with_suffix(".mo")))
    print(f"compiled {po_path.relative_to(ROOT)}")

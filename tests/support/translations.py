"""The Simplified Chinese catalog, compiled for tests run without `make messages`."""

import polib

from tests.support import ROOT

PO = ROOT / "registry" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def ensure_compiled_messages() -> None:
    """Compile the catalog if its .mo is missing or stale (what `make messages` does), and
    make Django reload its translations, for tests run without `make`."""
    mo = PO.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= PO.stat().st_mtime:
        return
    polib.pofile(str(PO)).save_as_mofile(str(mo))
    from django.utils.translation import trans_real

    trans_real._translations = {}
    trans_real._default = None

"""The Simplified Chinese catalog: complete, not fuzzy, placeholders intact, and covering every
translatable string in the source (the catalog is the committed source; the .mo files are
compiled by the build: `make messages`)."""

import re
import shutil
import subprocess
import sys

import polib
import pytest

from tests.support import ROOT
from tests.support.translations import PO

PLACEHOLDER = re.compile(r"%\((\w+)\)[-+ #0]*\d*(?:\.\d+)?[sdif]|%[sd]|\{\w+\}")
HAN = re.compile(r"[\u4e00-\u9fff]")
# msgids that stay as they are in Chinese (codes, identifiers).
UNTRANSLATED_ON_PURPOSE = {"ID"}


def catalog() -> list[polib.POEntry]:
    """The live entries (makemessages keeps removed strings as obsolete `#~` entries)."""
    assert PO.exists(), f"{PO} is missing: run makemessages -l zh_Hans"
    return [e for e in polib.pofile(str(PO)) if not e.obsolete]


def translations(entry: polib.POEntry) -> list[str]:
    if entry.msgid_plural:
        return [entry.msgstr_plural.get(i, "") for i in range(1)]  # nplurals=1 in Chinese
    return [entry.msgstr]


def test_every_msgid_has_a_chinese_translation_and_none_is_fuzzy():
    entries = catalog()
    assert len(entries) > 100
    untranslated = [e.msgid for e in entries if not all(t.strip() for t in translations(e))]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert untranslated == []
    assert fuzzy == []
    po = polib.pofile(str(PO))
    assert not po.metadata_is_fuzzy
    assert "nplurals=1" in po.metadata["Plural-Forms"]


def test_translations_are_chinese_and_keep_their_placeholders():
    for entry in catalog():
        for text in translations(entry):
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(entry.msgid)), (
                entry.msgid
            )
            if entry.msgid not in UNTRANSLATED_ON_PURPOSE:
                assert HAN.search(text), (entry.msgid, text)


@pytest.mark.skipif(not shutil.which("xgettext"), reason="needs GNU gettext (xgettext)")
def test_the_catalog_covers_every_translatable_string_in_the_source(tmp_path):
    """Extract the strings afresh (makemessages over a copy of the source) and compare: a
    string added to the code without a translation fails here."""
    copy = tmp_path / "registry"
    shutil.copytree(
        ROOT / "registry",
        copy,
        ignore=shutil.ignore_patterns("locale", "__pycache__", "static", "*.mo"),
    )
    (copy / "locale").mkdir()
    script = (
        "import django, sys\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "settings.LOCALE_PATHS = [sys.argv[1]]\n"
        "call_command('makemessages', locale=['zh_Hans'], verbosity=0)\n"
    )
    subprocess.run(
        # -P: the copy has a `selectors` package that must not shadow the standard library.
        [sys.executable, "-P", "-c", script, str(copy / "locale")],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=300,
        env={
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": "consortium.settings",
            "PYTHONPATH": str(ROOT),
        },
    )
    fresh = polib.pofile(str(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    known = {(e.msgctxt, e.msgid) for e in catalog()}
    missing = sorted(e.msgid for e in fresh if (e.msgctxt, e.msgid) not in known)
    assert missing == [], "run makemessages -l zh_Hans and translate: " + "; ".join(missing)

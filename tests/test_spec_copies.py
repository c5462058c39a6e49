"""The repository carries its own copy of the contract (spec/); where the consortium's shared
folder is checked out beside it, the copies must be identical."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "spec"
FILES = [
    "api.md",
    "identifiers.md",
    "vectors/canonical.json",
    "vectors/oprf-ristretto255-sha512.json",
    "vectors/voprf-ristretto255-sha512.json",
]


@pytest.mark.parametrize("name", FILES)
def test_it_ships_the_contract(name):
    assert (ROOT / "spec" / name).stat().st_size > 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared spec checked out beside the repo")
@pytest.mark.parametrize("name", FILES)
def test_it_keeps_the_copies_identical(name):
    assert (ROOT / "spec" / name).read_bytes() == (SHARED / name).read_bytes()

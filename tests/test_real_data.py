"""The real files shipped in tests/data: complete, unchanged, documented and small."""

from __future__ import annotations

import hashlib

from conftest import REAL_DATA

DOCS = {"SOURCES.md", "SHA256SUMS"}


def _recorded() -> dict[str, str]:
    lines = (REAL_DATA / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())}


def test_real_data_every_file_is_listed_and_matches_its_checksum():
    recorded = _recorded()
    shipped = {p.relative_to(REAL_DATA).as_posix() for p in REAL_DATA.rglob("*") if p.is_file()} - DOCS
    assert shipped == set(recorded)
    changed = [n for n, digest in recorded.items() if hashlib.sha256((REAL_DATA / n).read_bytes()).hexdigest() != digest]
    assert not changed, f"files differ from tests/data/SHA256SUMS: {changed}"


def test_real_data_is_small_and_every_file_has_a_source():
    total = sum(p.stat().st_size for p in REAL_DATA.rglob("*") if p.is_file())
    assert total < 4_000_000
    sources = (REAL_DATA / "SOURCES.md").read_text()
    for name in _recorded():
        assert f"`{name}`" in sources, f"tests/data/SOURCES.md does not document {name}"
    assert "Licence" in sources and "Xian et al." in sources

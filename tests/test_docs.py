"""The documentation: every Python block of the pages runs (blocks marked ``<!-- not-run -->``
are skipped), and every page is in the site's navigation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(?P<marker><!-- not-run -->\s*\n)?```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    """The runnable Python blocks of a page, in order."""
    return [m["code"] for m in BLOCK.finditer(page.read_text()) if m["lang"] == "python" and not m["marker"]]


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_docs_tutorial_pages_have_runnable_blocks():
    assert {p.name for p in PAGES} >= {"getting-started.md", "plugin.md", "library.md"}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_docs_python_blocks_run(page, tmp_path):
    """The page's blocks run in order in one fresh interpreter (later blocks use earlier names)."""
    script = "\n\n".join(python_blocks(page))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", "import torch; torch.set_num_threads(1)\n" + script],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, f"{page.name}:\n{out.stderr[-3000:]}"


def test_docs_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in DOCS.glob("*.md") if p.name not in nav]
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"

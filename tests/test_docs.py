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


RAW_MARKUP = (":class:", ":meth:", ":func:", ":mod:", ":attr:", ":data:", ":exc:", "::")


def test_docs_docstrings_are_markdown_without_sphinx_roles():
    """One docstring style across the package: Markdown (Google sections), no reST roles or ``::`` blocks."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for folder in ("mmalign", "plugins")
             for path in sorted((ROOT / folder).rglob("*.py")) for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(role in line for role in RAW_MARKUP[:-1]) or re.search(r"\w::\s*$|^\s*::\s*$", line)]
    assert not found, "reST markup mkdocstrings shows as text:\n" + "\n".join(found[:20])


def test_docs_site_builds_strict_and_the_api_page_shows_no_raw_roles(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import html

    page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "api" / "index.html").read_text()))
    raw = {role: page.count(role) for role in RAW_MARKUP if role in page}
    assert not raw, f"raw reST markup on the API page: {raw}"
    for name in ("DatasetCard", "LossTerm", "RunConfig", "add_plugin", "register_losses"):
        assert name in page, f"{name} is not in the API reference"

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
BLOCK = re.compile(r"(?P<marker><!-- not-run[^>]*-->\s*\n)?```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.DOTALL)


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


# --- the shell commands of the pages -------------------------------------------------------------
# Every command in a ```bash block runs, in page order, in one folder per page, with HOME a fresh
# folder holding small data sets in the xlsa17 layout where the pages name real ones (the card
# check is skipped for them: they are small). A command that would take minutes runs as the faster
# variant below; a block marked `<!-- not-run: why -->` may only install packages.

SHELL = ("bash", "sh")
FAST = {
    # configs.md
    "mmalign train cub.toml --out runs/cub --checkpoint-every 10":
        "mmalign train cub.toml --out runs/cub --checkpoint-every 1 --epochs 3 --keep-state",
    "mmalign train cub.toml --out runs/cub --checkpoint-every 10 --resume":
        "mmalign train cub.toml --out runs/cub --checkpoint-every 1 --epochs 3 --resume",
    "mmalign eval runs/cub --setting gzsl --shots 0 5": "mmalign eval runs/cub --setting gzsl --shots 0 5 --classifier-epochs 2",
    # report.md
    "mmalign train cub.toml --out runs/cub --epochs 25": "mmalign train cub.toml --out runs/cub --epochs 2",
    "mmalign eval runs/cub --setting gzsl": "mmalign eval runs/cub --setting gzsl --classifier-epochs 2",
    "mmalign report runs/cub --out report/": "mmalign report runs/cub --out report/ --max-points 200",
    # plugin.md: installed into a folder of this test, not into the environment running the tests
    "pip install ./examples/mmalign_audio_example":
        "python -m pip install -q --no-deps --no-build-isolation --target site $ROOT/examples/mmalign_audio_example",
    ("plugin.md", "mmalign plugins"): "PYTHONPATH=$PWD/site mmalign plugins | grep -F 'audio 0.1.0'",
    # reproducing.md: the download from a loopback copy of a (small) release
    "mmalign data download xlsa17": "mmalign data download xlsa17 --url $URL",
    "mmalign data download xlsa17 --sha256 HEX": "mmalign data download xlsa17 --url $URL --sha256 $SHA",
    "mmalign benchmark cub --data-dir ~/data/xlsa17": "mmalign benchmark cub --data-dir ~/data/xlsa17 --skip-card-check --epochs 1",
    "mmalign benchmark sun --seeds 3": "mmalign benchmark sun --seeds 3 --skip-card-check --epochs 1",
    "mmalign benchmark awa2 --shots 0 1 2 5 10 --seeds 3":
        "mmalign benchmark awa2 --shots 0 1 2 5 10 --seeds 3 --skip-card-check --epochs 1",
    "mmalign benchmark cub --setting zsl --side-info sentences":
        "mmalign benchmark cub --setting zsl --side-info sentences --skip-card-check --epochs 1",
    "mmalign benchmark cub --synthetic --seeds 3": "mmalign benchmark cub --synthetic --seeds 1 --epochs 1 --classifier-epochs 1",
    "mmalign benchmark custom --data-dir ~/data/MYSET --classifier-epochs 30":
        "mmalign benchmark custom --data-dir ~/data/MYSET --classifier-epochs 30 --epochs 1",
    "mmalign benchmark cub-text": "mmalign benchmark cub-text --epochs 1 --text-vectors shipped --baselines",
    # sweeps.md (sweep.toml is cut down below)
    "mmalign sweep sweep.toml --out runs/sweep --ray": "mmalign sweep sweep.toml --out runs/sweep-ray --ray --workers 1",
    "torchrun --nproc_per_node 4 --no-python mmalign train cub.toml --out runs/cub --checkpoint-every 10":
        "torchrun --nproc_per_node 2 --no-python mmalign train cub.toml --out runs/cub --checkpoint-every 1 --epochs 1",
}
#: the page's data files, made small: (file, text on the page, text in the test; {DATA}: the data root)
SMALL_FILES = [
    ("cub.toml", "synthetic = true", 'skip_card_check = true\ndata_dir = "{DATA}"'),
    ("sweep.toml", "synthetic = true\nepochs = 100", 'skip_card_check = true\ndata_dir = "{DATA}"\nepochs = 1'),
    ("sweep.toml", "shots = [0, 1, 2, 5, 10]\nseed = [0, 1, 2]", "shots = [0]\nseed = [0]"),
    ("sweep.toml", "samples = 4", "samples = 1"),
]
FILE = re.compile(r"\A# (?P<name>[\w.-]+\.(toml|json))\n")


def shell_blocks(page: Path) -> list[tuple[str | None, str]]:
    """(not-run marker or None, code) of every shell block of a page."""
    return [(m["marker"], m["code"]) for m in BLOCK.finditer(page.read_text()) if m["lang"] in SHELL]


def shell_commands(code: str) -> list[str]:
    """One command per line (``\\`` continues a line), the trailing comment removed."""
    lines = code.replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def data_files(data_root: Path) -> dict[str, str]:
    """The files the pages show as blocks whose first line is ``# NAME.toml`` (a page may use a file
    another page shows), cut down for the test."""
    files = {}
    for m in (m for page in sorted(DOCS.glob("*.md")) for m in BLOCK.finditer(page.read_text())):
        name = FILE.match(m["code"])
        if name:
            files[name["name"]] = m["code"] + "\n"
    for name, page_text, small in SMALL_FILES:
        if name in files:
            assert page_text in files[name], f"{name} no longer holds {page_text!r}; update SMALL_FILES"
            files[name] = files[name].replace(page_text, small.replace("{DATA}", str(data_root)))
    return files


SHELL_PAGES = sorted(p for p in DOCS.glob("*.md") if any(marker is None for marker, _ in shell_blocks(p)))


def test_docs_blocks_not_run_only_install_packages():
    for page in DOCS.glob("*.md"):
        for marker, code in shell_blocks(page):
            if marker:
                for command in shell_commands(code):
                    first = command.split("&&")[0].strip()
                    assert first.startswith(("python3 -m venv", "pip install")), f"{page.name}: {command} is not run"


def test_docs_fast_variants_are_of_commands_on_the_pages():
    shown = {c for page in DOCS.glob("*.md") for marker, code in shell_blocks(page) if not marker
             for command in shell_commands(code) for c in (command, (page.name, command))}
    assert not set(FAST) - shown, f"variants of commands no page shows: {sorted(set(FAST) - shown)}"


@pytest.fixture(scope="module")
def docs_home(tmp_path_factory):
    """HOME with the pages' data: ~/data/xlsa17/{CUB,SUN,AWA2} and ~/data/MYSET (small, xlsa17
    layout; CUB with sentences), the zip of a release to download, and the authors' pickle."""
    import pickle

    import malformed
    import numpy as np
    from loopback import zip_bytes

    home = tmp_path_factory.mktemp("home")
    release = {}
    for name in ("CUB", "SUN", "AWA2", "MYSET"):
        data = malformed.small_data(per_class=20)
        if name == "CUB":
            data.class_features["sentences"] = np.random.default_rng(1).random(
                (data.num_classes, 12)).astype(np.float32)
        folder = malformed.write_dataset(home / "data" / ("xlsa17" if name != "MYSET" else ""), name, data)
        release.update({f"xlsa17/data/{name}/{f.name}": f.read_bytes() for f in folder.iterdir() if name != "MYSET"})
    with open(home / "CUB_supporting_data.p", "wb") as fh:
        pickle.dump({"train_X": np.zeros((3, 4), np.float32), "names": ["a", "b"]}, fh)
    return home, zip_bytes(release)


@pytest.mark.slow
@pytest.mark.parametrize("page", SHELL_PAGES, ids=[p.stem for p in SHELL_PAGES])
def test_docs_shell_commands_run(page, docs_home, tmp_path):
    """Every command of the page exits 0 (in page order, in one folder, the fast variants above)."""
    import hashlib
    import shutil

    from loopback import LoopbackServer

    home, release = docs_home
    work = tmp_path / page.stem
    work.mkdir()
    shutil.copy(home / "CUB_supporting_data.p", work)
    for name, text in data_files(home / "data" / "xlsa17").items():
        (work / name).write_text(text)
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMALIGN_") and k != "PYTHONPATH"}
    env.update({"HOME": str(home), "PATH": bin_dir + os.pathsep + env.get("PATH", ""), "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "ROOT": str(ROOT), "MMALIGN_CACHE_DIR": str(home / "cache"),
                "RAY_AUTH_MODE": "disabled", "NO_MKDOCS_2_WARNING": "1", "SHA": hashlib.sha256(release).hexdigest()})
    with LoopbackServer(release) as server:
        env["URL"] = server.url
        for marker, code in shell_blocks(page):
            if marker:
                continue
            for command in shell_commands(code):
                run = FAST.get((page.name, command), FAST.get(command, command))
                out = subprocess.run(["bash", "-o", "pipefail", "-c", run], cwd=work, env=env, capture_output=True,
                                     text=True, timeout=600)
                assert out.returncode == 0, f"{page.name}: {run}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


def _test_command(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("python3 -m venv") and "pytest" in line)


def test_docs_test_command_is_the_readmes():
    """Getting started installs the same extras as the README before running the tests."""
    assert _test_command((DOCS / "getting-started.md").read_text()) == _test_command((ROOT / "README.md").read_text())


def test_docs_warmup_epochs_agree_with_the_code():
    """The epochs the pages give for the families' first non-zero weight are the warning's."""
    from mmalign.recipes import load_recipe

    warmup = load_recipe().training.warmup
    align, cross = warmup["align"].first_active_epoch(), warmup["cross"].first_active_epoch()
    for page in ("getting-started.md", "report.md"):
        text = " ".join((DOCS / page).read_text().split())
        assert f"alignment weight is 0 until epoch {align}" in text, page
        assert f"cross-reconstruction weight until epoch {cross}" in text or \
            f"cross-reconstruction weight is 0 until epoch {cross}" in text, page


def test_docs_help_points_at_the_pages_and_states_defaults(capsys):
    """``train --help`` names the docs page for run configs; each benchmark's ``--help`` says its
    epochs (cub-text: 50 unless its recipe says otherwise)."""
    from mmalign.cli import main

    for command, expected in ((["train"], "docs/configs.md"), (["benchmark", "cub-text"], "(50 without one)"),
                              (["benchmark", "cub"], "VAE epochs (default: the recipe's)")):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert expected in text, command

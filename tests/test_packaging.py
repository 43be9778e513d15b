"""What users install is what is tested: the wheel built from the repository holds every module
and data file of the package, under the names the package imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> the name it is installed under
INSTALLED_AS = {"mmalign": "mmalign", "plugins": "mmalign_plugins", "registry": "mmalign_registry"}


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout (the wheel is built from the tracked files)")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p and (ROOT / p).is_file()]


@pytest.fixture(scope="module")
def wheel_and_sources(tmp_path_factory) -> tuple[set[str], set[str]]:
    """Build the wheel from a clean copy of the tracked files (no stale build/ folder can leak in)."""
    files = _tracked_files()
    src = tmp_path_factory.mktemp("src")
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("mmalign-*.whl")
    names = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    expected = set()
    for rel in files:
        top, _, rest = rel.partition("/")
        if top in INSTALLED_AS and rest and "__pycache__" not in rel:
            expected.add(f"{INSTALLED_AS[top]}/{rest}")
    return names, expected


def test_wheel_holds_every_module_and_data_file_of_the_package(wheel_and_sources):
    names, expected = wheel_and_sources
    assert sorted(expected - names) == [], "files of the package missing from the wheel"
    assert sorted(names - expected) == [], "files in the wheel that the repository does not have"


def test_wheel_holds_every_subpackage_the_code_imports(wheel_and_sources):
    names, _ = wheel_and_sources
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "mmalign").rglob("__init__.py")}
    assert packages and all(f"{p}/__init__.py" in names for p in packages), sorted(packages)
    assert "mmalign/sweeps/__init__.py" in names and "mmalign_plugins/benchmarks.py" in names

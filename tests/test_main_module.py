"""``python -m mmalign`` works from the folder above a clone named ``mmalign`` (whose top folder,
without ``__init__.py``, Python would otherwise take for a namespace package shadowing mmalign)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mmalign

ROOT = Path(__file__).resolve().parents[1]


def test_main_module_runs_from_the_folder_above_a_clone(tmp_path):
    (tmp_path / "mmalign").symlink_to(ROOT, target_is_directory=True)  # the clone, as `git clone` names it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MMALIGN_DEBUG")}
    out = subprocess.run([sys.executable, "-m", "mmalign", "--version"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"mmalign {mmalign.__version__}"

"""Where a result came from: package and plugin versions, the device, hashes of the data.

Every result record carries these (see `mmalign.records.schema`), so two numbers can be compared
knowing whether they came from the same code, machine and data.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def versions() -> dict[str, Any]:
    """mmalign, torch and Python versions, the source commit, and every loaded plugin's version."""
    from ..plugins import get_catalog

    plugins = {p.name: p.version for p in get_catalog().plugins.values()}
    return {"mmalign": __version__, "commit": source_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "plugins": dict(sorted(plugins.items()))}


@lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit mmalign runs from (``+dirty`` with uncommitted changes), or ``None`` when
    it is not a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]  # mmalign/records/provenance.py -> the checkout
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def file_hashes(data) -> dict[str, str]:
    """sha256 of every file the data was read from (empty for generated data)."""
    files = data.meta.get("files", {})
    return {name: info["sha256"] for name, info in files.items() if isinstance(info, dict) and "sha256" in info}


def array_hash(data) -> str:
    """sha256 of the labels, splits and feature arrays (for generated data, which has no files)."""
    h = hashlib.sha256()
    for arr in [data.labels, *(data.splits[k] for k in sorted(data.splits)),
                *(data.sample_features[k] for k in sorted(data.sample_features)),
                *(data.class_features[k] for k in sorted(data.class_features))]:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def data_hashes(data) -> dict[str, str]:
    """The files' hashes, or ``{"arrays": <hash of the arrays>}`` when the data has no files."""
    return file_hashes(data) or {"arrays": array_hash(data)}


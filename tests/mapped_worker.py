"""Train on a feature file larger than this process may allocate (run by tests/test_mapped_features.py).

``python mapped_worker.py FILE LIMIT_BYTES``: caps the data segment (``RLIMIT_DATA``) at
``LIMIT_BYTES``, checks that reading ``FILE`` whole now fails, trains one epoch on its rows left on
disk (``mmalign.datasets.map_features``) and prints one JSON line: the final loss, the peak RSS
and the RSS before anything was read (the interpreter with torch and mmalign loaded).
"""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

import mmalign
from mmalign.datasets import map_features

CLASSES, UNSEEN = 10, 2


def _status(field: str) -> int:
    """Bytes of ``field`` in /proc/self/status (``VmRSS``; ``VmHWM``: this program's peak RSS. Not
    ``ru_maxrss``, which keeps the parent's RSS at fork across exec)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))


def main(path: str, limit: int) -> None:
    import torch  # noqa: F401  (loaded before the baseline is read)

    baseline = _status("VmRSS")
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        np.fromfile(path, dtype=np.float32)
        loaded_whole = True
    except MemoryError:
        loaded_whole = False
    feats = map_features(path)
    n = feats.shape[0]
    labels = np.arange(n) % CLASSES
    seen = np.flatnonzero(labels < CLASSES - UNSEEN)
    test_seen = seen[::5]
    data = mmalign.AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(CLASSES)], sample_features={"features": feats},
        class_features={"attributes": np.random.default_rng(0).random((CLASSES, 6)).astype(np.float32)},
        splits={"trainval": np.setdiff1d(seen, test_seen), "test_seen": test_seen,
                "test_unseen": np.flatnonzero(labels >= CLASSES - UNSEEN)}, name="mapped")
    ramp = {"start": -1, "end": 0, "factor": 1.0}
    aligner = mmalign.Aligner(
        [{"kind": "image_features", "name": "img", "hidden": [16, 16]}, {"kind": "attributes", "name": "att", "hidden": [8, 8]}],
        {"latent_size": 4, "device": "cpu", "training": {"epochs": 1, "batch_size": 512,
                                                         "warmup": {f: ramp for f in ("kl", "cross", "align")}}})
    history = aligner.fit(data, progress=False)
    peak = _status("VmHWM")
    print(json.dumps({"loss": history[-1].terms["loss"], "peak_rss": peak, "baseline_rss": baseline,
                      "loaded_whole": loaded_whole,
                      "train_rows": int(data.splits["trainval"].size)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

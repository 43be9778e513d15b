"""Train on a feature file larger than this process may allocate (run by tests/test_mapped_features.py).

``python mapped_worker.py FILE LIMIT_BYTES``: caps the data segment (``RLIMIT_DATA``) at
``LIMIT_BYTES``, checks that reading ``FILE`` whole now fails, trains one epoch on its rows left on
disk (``mmalign.datasets.map_features``) and prints one JSON line: the final loss and the peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

import mmalign
from mmalign.datasets import map_features

CLASSES, UNSEEN = 10, 2


def main(path: str, limit: int) -> None:
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"loss": history[-1].terms["loss"], "peak_rss": peak, "loaded_whole": loaded_whole,
                      "train_rows": int(data.splits["trainval"].size)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

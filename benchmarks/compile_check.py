"""``compile=True`` (torch.compile of the training step) gives the reference engine's numbers, for one
run and for two seeds stacked, and how long compiling takes.

Not in the test suite: compiling takes 1-4 minutes on the 2-core CPU (about 1:50 wall with a
warm inductor cache on a busy 2-core Zen 5), more than the suite's per-test budget. Run it after
touching the engine (on the CPU inductor needs a C++ compiler)::

    python benchmarks/compile_check.py          # exit 1 when a path disagrees
"""

from __future__ import annotations

import copy
import sys
import time
import warnings

import numpy as np
import torch

import mmalign
from mmalign.training import train, train_seeds

ON = {"start": -1, "end": 3, "factor": 1.0}  # every weight non-zero from epoch 0: one graph per path


def toy_data(seed: int = 0) -> mmalign.AlignmentData:
    rng = np.random.default_rng(seed)
    att = rng.random((12, 10)).astype(np.float32)
    labels = np.repeat(np.arange(12), 20)
    feats = (np.maximum(att[labels] @ rng.normal(size=(10, 40)), 0) + 0.05 * rng.random((240, 40))).astype(np.float32)
    seen = np.flatnonzero(labels < 8)
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(12)], sample_features={"features": feats},
        class_features={"attributes": att},
        splits={"trainval": seen[seen % 5 != 0], "test_seen": seen[seen % 5 == 0],
                "test_unseen": np.flatnonzero(labels >= 8)}, name="toy")


def main() -> int:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    a = mmalign.Aligner([{"kind": "image_features", "hidden": (16, 12)}, {"kind": "attributes", "hidden": (8, 8)}],
                        {"seed": 0, "device": "cpu", "latent_size": 4,
                         "training": {"epochs": 2, "batch_size": 16, "warmup": {"kl": ON, "cross": ON, "align": ON}}})
    tensors = a.training_tensors(toy_data())
    model = a.build(a.dims)
    twin, pair = copy.deepcopy(model), [copy.deepcopy(model), copy.deepcopy(model)]
    config = a.config.training  # the weights change per epoch without recompiling (a tensor input)
    compiled = config.model_copy(update={"compile": True})
    ref = train(model, tensors, config.model_copy(update={"engine": "reference"}), torch.Generator().manual_seed(0),
                progress=False)
    started = time.perf_counter()
    one = train(twin, tensors, compiled, torch.Generator().manual_seed(0), progress=False)
    t_one = time.perf_counter() - started
    started = time.perf_counter()
    runs = train_seeds(pair, tensors, compiled, [torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)], progress=False)
    t_seeds = time.perf_counter() - started
    worst = max(abs(e.terms["loss"] - r.terms["loss"]) / abs(r.terms["loss"])
                for history in (one, *runs) for r, e in zip(ref, history))
    params = max((p - q).abs().max().item() for p, q in zip(model.parameters(), twin.parameters()))
    ok = worst < 1e-4 and params < 1e-5
    print(f"compiled one run {t_one:.1f} s, two seeds stacked {t_seeds:.1f} s (compile included); "
          f"largest relative loss difference {worst:.2e}, parameter difference {params:.2e}: {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

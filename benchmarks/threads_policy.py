"""OpenMP wait policies, library against command line: ``Aligner.fit`` wall time per policy.

    python benchmarks/threads_policy.py [--rounds 3] [--data library|cub] [--epochs 20]

Every run is a fresh process (libgomp reads its wait policy once, when torch loads) that fits one
aligner with torch's default thread count and prints the ``fit`` wall time; the policies run in
turn, ``--rounds`` times, so the drift of a shared machine falls on all of them alike. The
1-minute load average is printed beside every number.

* ``cli-passive``: ``OMP_WAIT_POLICY=PASSIVE``, the command line's policy before this change (the
  reference: the fastest on a loaded CPU);
* ``library``: ``import mmalign`` first, nothing set: the default (a short spin,
  ``GOMP_SPINCOUNT=1000``, set by ``mmalign``'s import; the CLI sets the same);
* ``torch-first``: ``import torch`` before ``mmalign``, nothing set (libgomp's long spin; ``fit``
  falls back to one thread while every core is busy);
* ``libgomp-spin``: ``GOMP_SPINCOUNT=300000``, libgomp's default: the library before this change;
* ``active``: ``OMP_WAIT_POLICY=ACTIVE``.

``--data library``: the data of ``docs/library.md`` (300 samples, three modalities, tiny networks);
``--data cub``: ``synthetic_like("CUB")`` with CADA's networks (a CUB epoch = 142 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

FIT = r"""
import time, sys
{imports}
import numpy as np
import mmalign
if "{data}" == "library":
    rng = np.random.default_rng(0)
    classes, per_class = 10, 30
    labels = np.repeat(np.arange(classes), per_class)
    prototypes = rng.random((classes, 12)).astype(np.float32)
    data = mmalign.AlignmentData(
        labels=labels, class_names=[f"class{{i}}" for i in range(classes)],
        sample_features={{
            "photo": (prototypes[labels] @ rng.random((12, 40)) + 0.1 * rng.random((labels.size, 40))).astype(np.float32),
            "sound": (prototypes[labels] @ rng.random((12, 20)) + 0.1 * rng.random((labels.size, 20))).astype(np.float32)}},
        class_features={{"description": prototypes}},
        splits={{"trainval": np.flatnonzero(labels < 7)[::2], "test_seen": np.flatnonzero(labels < 7)[1::2],
                "test_unseen": np.flatnonzero(labels >= 7)}}, name="mine").validate()
    aligner = mmalign.Aligner(
        [{{"kind": "image_features", "name": "photo", "source": "photo", "hidden": (64, 64)}},
         {{"kind": "image_features", "name": "sound", "source": "sound", "hidden": (32, 32)}},
         {{"kind": "attributes", "name": "description", "source": "description", "hidden": (32, 32)}}],
        config={{"seed": 0, "latent_size": 8, "training": {{"epochs": {epochs}, "batch_size": 32}}}})
else:
    from mmalign.datasets.synthetic import synthetic_like
    data = synthetic_like("CUB", seed=0)
    aligner = mmalign.Aligner(["image_features", "attributes"], config={{"seed": 0, "device": "cpu",
                              "training": {{"epochs": {epochs}}}}})
import warnings; warnings.simplefilter("ignore")
start = time.perf_counter()
aligner.fit(data, progress=False)
print("FIT", time.perf_counter() - start)
"""

POLICIES = {
    "cli-passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, ""),
    "library": ({}, ""),
    "torch-first": ({}, "import torch"),
    "libgomp-spin": ({"GOMP_SPINCOUNT": "300000"}, ""),
    "active": ({"OMP_WAIT_POLICY": "ACTIVE"}, ""),
}


def run(policy: str, data: str, epochs: int) -> float:
    env_set, imports = POLICIES[policy]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(env_set)
    code = FIT.format(imports=imports, data=data, epochs=epochs)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.exit(f"threads_policy: {policy} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split("FIT")[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", choices=("library", "cub"), default="library")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    args = p.parse_args()
    times: dict[str, list[float]] = {k: [] for k in args.policies}
    print(f"{open('/proc/cpuinfo').read().split('model name')[1].split(chr(10))[0].strip(' :' + chr(9))}, "
          f"{os.cpu_count()} CPUs; data {args.data}, {args.epochs} epochs; fit wall seconds", flush=True)
    for rnd in range(1, args.rounds + 1):
        for policy in args.policies:
            load = os.getloadavg()[0]
            seconds = run(policy, args.data, args.epochs)
            times[policy].append(seconds)
            print(f"round {rnd}  {policy:13s} {seconds:8.2f} s   load {load:.2f}", flush=True)
    ref = statistics.median(times[args.policies[0]])
    print(f"\n| policy | fit s (rounds) | median | / {args.policies[0]} |\n|---|---|---|---|")
    for policy, ts in times.items():
        med = statistics.median(ts)
        print(f"| {policy} | {' / '.join(f'{t:.2f}' for t in ts)} | {med:.2f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()

"""CPU seconds per training epoch of each recipe against ``cada_vae`` on ``cub-latents``
(attributes), every family at its full weight from the first epoch (the warm-ups are replaced by
their final factors, so the cost of the whole step is measured), recipes interleaved round by round,
one thread::

    python benchmarks/beyond_timing.py --epochs 3 --rounds 2 cada_vae cada_classify cada_contrastive \
        cada_adversarial cada_beyond

Prints one JSON line per (round, recipe): ``cpu_s_per_epoch`` (process time: robust to other
processes on a shared machine) and ``wall_s_per_epoch``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import mmalign
from mmalign.datasets.load import load_dataset
from mmalign.recipes import load_recipe
from mmalign.runs import default_modalities


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipes", nargs="+")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("cub-latents")
    for r in range(args.rounds):
        for name in args.recipes:
            warmup = {f: {"factor": ramp.factor} for f, ramp in load_recipe(name).training.warmup.items()}
            config = {"seed": 0, "device": "cpu", "training": {"epochs": args.epochs, "warmup": warmup}}
            aligner = mmalign.Aligner(default_modalities("attributes"), config, recipe=name)
            cpu, wall = time.process_time(), time.perf_counter()
            aligner.fit(data, progress=False)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(json.dumps({"round": r, "recipe": name, "epochs": args.epochs,
                              "cpu_s_per_epoch": round(cpu / args.epochs, 3),
                              "wall_s_per_epoch": round(wall / args.epochs, 3)}), flush=True)


if __name__ == "__main__":
    main()

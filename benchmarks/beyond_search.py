"""Choose the new loss families' weights and options on validation classes only.

Trains each candidate on ``validation_view(cub-latents)`` (the ``train`` classes' images minus a
held-out fifth; the ``val`` classes play the unseen classes; nothing of ``test_seen`` /
``test_unseen`` is read) and scores ZSL top-1, 5-shot ZSL and GZSL H with the CUB classifier-epoch
table of the ``cada_vae`` recipe. One line of JSON per candidate on stdout::

    python benchmarks/beyond_search.py --family classify --weights 0.3 1 3 --seed 0 \
        --side-info attributes > runs/beyond/search_classify.jsonl

``--options '{"temperature": 0.1}'`` sets the family's options; ``--ramp start end`` a warm-up
instead of a constant weight. ``--family none`` scores ``cada_vae`` itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import mmalign
from mmalign.datasets.load import load_dataset
from mmalign.protocols import evaluate
from mmalign.protocols.policies import validation_view
from mmalign.runs import default_modalities

SETTINGS = (("zsl", 0), ("zsl", 2), ("gzsl", 0))  # validation classes have 7-8 images: 2 shots at most there


def score(config: dict, data, side_info: str, recipe: str = "cada_vae") -> dict:
    aligner = mmalign.Aligner(default_modalities(side_info), config, recipe=recipe)
    started = time.perf_counter()
    history = aligner.fit(data, progress=False)
    seconds = time.perf_counter() - started
    out = {"seconds_per_epoch": seconds / len(history)}
    for setting, shots in SETTINGS:
        r = evaluate(aligner, data, setting, shots, policy="fixed", seed=config["seed"], dataset_name="CUB")
        key = f"{setting}{shots}"
        out.update({f"{key}_top1": r["top1"]} if setting == "zsl" else {f"{key}_{m}": r[m] for m in ("U", "S", "H")})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", required=True)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0])
    p.add_argument("--ramp", type=float, nargs=2, default=None)
    p.add_argument("--options", default="{}")
    p.add_argument("--extra", default="{}", help="more warmup entries, JSON family -> ramp")
    p.add_argument("--extra-options", default="{}", help="more losses entries, JSON family -> options")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--side-info", default="attributes")
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = validation_view(load_dataset("cub-latents"), seed=args.seed)
    for w in args.weights if args.family != "none" else [0.0]:
        warmup = dict(json.loads(args.extra))
        losses = dict(json.loads(args.extra_options))
        if args.family != "none":
            ramp = {"factor": w} if args.ramp is None else {"start": args.ramp[0], "end": args.ramp[1], "factor": w}
            warmup[args.family] = ramp
            losses[args.family] = json.loads(args.options)
        training = {"warmup": warmup, **({"epochs": args.epochs} if args.epochs else {})}
        config = {"seed": args.seed, "device": "cpu", "training": training, "losses": losses}
        result = score(config, data, args.side_info)
        print(json.dumps({"family": args.family, "weight": w, "ramp": args.ramp, "options": json.loads(args.options),
                          "extra": warmup, "seed": args.seed, "side_info": args.side_info, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

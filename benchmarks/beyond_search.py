"""The experiments of ``benchmarks/BEYOND.md`` on the real-feature ``cub-latents`` data set.

One VAE per (recipe, seed), scored with the CADA-VAE latent-classifier protocol in three settings
(ZSL top-1, k-shot ZSL top-1, GZSL U/S/H) with the classifier epochs of the ``cada_vae`` recipe's
CUB table (the released code's values; nothing is tuned on these data's test splits). One line of
JSON per run on stdout.

``--view val`` (the search): train on ``validation_view(cub-latents)`` (the ``train`` classes'
images minus a held-out fifth; the ``val`` classes play the unseen classes; nothing of
``test_seen``/``test_unseen`` is read); 2 shots (validation classes have 7-8 images).
``--view test`` (the reported numbers): train on ``trainval``, score on ``test_seen``/``test_unseen``,
5 shots. Examples::

    python benchmarks/beyond_search.py --view val --family classify --weights 1 10 > search.jsonl
    python benchmarks/beyond_search.py --view test --recipe cada_classify --seeds 0 1 2 > test.jsonl

``--family F --weights w1 w2 ..`` (with ``--ramp start end`` and ``--options JSON``) overrides one
family of ``--recipe`` per candidate.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

import mmalign
from mmalign.datasets.load import load_dataset
from mmalign.protocols import evaluate
from mmalign.protocols.policies import validation_view
from mmalign.runs import default_modalities


def score(config: dict, data, side_info: str, recipe: str, shots: int) -> dict:
    aligner = mmalign.Aligner(default_modalities(side_info), config, recipe=recipe)
    started = time.perf_counter()
    history = aligner.fit(data, progress=False)
    seconds = time.perf_counter() - started
    out = {"seconds_per_epoch": round(seconds / len(history), 4)}
    for setting, k in (("zsl", 0), ("zsl", shots), ("gzsl", 0)):
        r = evaluate(aligner, data, setting, k, policy="fixed", seed=config["seed"], dataset_name="CUB")
        key = f"{setting}{k}"
        out.update({f"{key}_top1": r["top1"]} if setting == "zsl" else {f"{key}_{m}": r[m] for m in ("U", "S", "H")})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--view", choices=("val", "test"), required=True)
    p.add_argument("--recipe", default="cada_vae")
    p.add_argument("--family", default=None)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0])
    p.add_argument("--ramp", type=float, nargs=2, default=None)
    p.add_argument("--options", default="{}")
    p.add_argument("--also", default="{}", help="more training.warmup entries, JSON family -> ramp")
    p.add_argument("--also-options", default="{}", help="more losses entries, JSON family -> options")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--side-info", default="attributes")
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    full = load_dataset("cub-latents")
    for seed in args.seeds:
        data = validation_view(full, seed=seed) if args.view == "val" else full
        for w in args.weights if args.family else [None]:
            training, losses = {}, dict(json.loads(args.also_options))
            if json.loads(args.also):
                training["warmup"] = dict(json.loads(args.also))
            if args.family:
                ramp = {"factor": w} if args.ramp is None else {"start": args.ramp[0], "end": args.ramp[1], "factor": w}
                training["warmup"] = {**training.get("warmup", {}), args.family: ramp}
                losses[args.family] = json.loads(args.options)
            if args.epochs:
                training["epochs"] = args.epochs
            config = {"seed": seed, "device": "cpu", "training": training, **({"loss_options": losses} if losses else {})}
            result = score(config, data, args.side_info, args.recipe, 2 if args.view == "val" else 5)
            print(json.dumps({"view": args.view, "recipe": args.recipe, "family": args.family, "weight": w,
                              "ramp": args.ramp, "options": json.loads(args.options), "also": json.loads(args.also),
                              "also_options": json.loads(args.also_options), "seed": seed,
                              "side_info": args.side_info, "machine": platform.processor() or platform.machine(),
                              **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose the aligner's capacity and contrastive temperature for cub-text by cross-validation over
the 150 *seen* classes only (the folds the ridge/CCA baselines use; mmalign.retrieval.select).

    python benchmarks/cub_text_select.py --recipe cub_text_contrastive --alignment att+sent+wiki \\
        --grid latent_size=32,64 loss_options.contrastive.temperature=0.1,0.2 [--folds 5] [--seed 0]

Each candidate is a set of Aligner config overrides on top of the recipe (``modality.hidden=A:B``
sets every modality's hidden sizes, ``epochs=N`` the training length with the recipe's ramps
scaled). Prints one line per candidate (mean held-out MRR over folds and ordered pairs, seconds)
and the best; never looks at the 50 unseen classes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cub_text_contrastive")
    parser.add_argument("--alignment", default="att+sent+wiki")
    parser.add_argument("--grid", nargs="*", default=[], help="key=v1,v2 ... (dotted config keys; modality.hidden=A:B; epochs=N)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="append one JSON line per candidate here")
    args = parser.parse_args()
    import torch

    from mmalign.aligner import Aligner
    from mmalign.retrieval.cub_data import load_cub_text
    from mmalign.retrieval.cub_text import build_modalities, class_arrays, retrieval_settings, scaled_warmup, wiki_vectors
    from mmalign.retrieval.select import cv_score, expand_grid

    torch.set_num_threads(args.threads)
    names = args.alignment.split("+")
    bundle = load_cub_text()
    vectors, _ = wiki_vectors(bundle, "never")
    arrays = class_arrays(bundle, vectors, "visual")
    settings = retrieval_settings(args.recipe)
    grid = {k: [parse_value(v) for v in vals.split(",")] for k, vals in (g.split("=", 1) for g in args.grid)}

    def make_aligner(candidate: dict):
        candidate = json.loads(json.dumps(candidate))
        hidden = candidate.pop("modality", {}).get("hidden", None)
        hidden = tuple(int(h) for h in hidden.split(":")) if isinstance(hidden, str) else settings["hidden"]
        epochs = int(candidate.pop("epochs", settings["epochs"]))
        training = {**candidate.pop("training", {}), "epochs": epochs, "warmup": scaled_warmup(epochs, args.recipe)}
        config = {**candidate, "seed": args.seed, "device": "cpu", "training": training}
        return Aligner(build_modalities(names, "class", hidden), config, recipe=args.recipe)

    results = []
    for candidate in expand_grid(grid) or [{}]:
        started = time.perf_counter()
        result = cv_score(make_aligner, candidate, arrays, names, bundle.seen, bundle.class_names, folds=args.folds,
                          seed=args.seed, class_repeats=settings["class_repeats"])
        result.update(recipe=args.recipe, alignment=args.alignment, folds=args.folds, seed=args.seed)
        results.append(result)
        print(f"{json.dumps(candidate)}  cv MRR {100 * result['mrr']:.2f}  ({time.perf_counter() - started:.0f} s)", flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(result) + "\n")
    best = max(results, key=lambda r: r["mrr"])
    print(f"best: {json.dumps(best['candidate'])}  cv MRR {100 * best['mrr']:.2f}")


if __name__ == "__main__":
    main()

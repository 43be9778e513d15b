"""Do the GPU paths of engine ``auto`` train the same model as engine ``reference``? (Part of gpu_check.sh.)

    python benchmarks/gpu_equivalence.py --device cuda --json runs/gpu/equivalence.json

Same initial weights, same seed, CUB-shaped synthetic data, on one device:

* VAE: engine ``reference`` against engine ``auto`` with and without CUDA graphs, over epochs on both
  sides of the cross-reconstruction warm-up start; and ``train_seeds`` (graphs) for two seeds against
  one ``auto`` run per seed. Reported: the largest relative difference of the per-epoch mean loss
  terms and the largest absolute difference of the weights.
* Classifier: the fast path (a CUDA graph per epoch on a GPU) against the DataLoader reference on
  CUB-sized latents: whether the weights are bit-identical, their largest difference, and how many
  test predictions agree.

Each check runs on its own; a failure is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import traceback
from pathlib import Path

import torch

import mmalign
from mmalign.datasets.synthetic import synthetic_like
from mmalign.training import train_seeds
from mmalign.protocols.classifier import predict, train_reference as clf_reference, train_resident as clf_fast
from mmalign.training import train


def max_rel_diff(h1, h2) -> float:
    worst = 0.0
    for a, b in zip(h1, h2):
        for k in a.terms:
            worst = max(worst, abs(a.terms[k] - b.terms[k]) / max(abs(a.terms[k]), 1e-6))
    return worst


def max_weight_diff(m1, m2) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(m1.parameters(), m2.parameters()))


def vae_checks(device: str, epochs: int) -> dict:
    data = synthetic_like("CUB", seed=0)
    config = {"seed": 0, "device": device,
              "training": {"epochs": epochs, "warmup": {"cross": {"start": 1, "end": 3, "factor": 2.0}}}}
    a = mmalign.Aligner(["image_features", "attributes"], config=config)
    tensors = a.training_tensors(data)
    cfg = a.config.training
    ref_cfg = cfg.model_copy(update={"engine": "reference"})
    base = a.build(a.dims)
    gen = lambda seed=0: torch.Generator(device=device).manual_seed(seed)  # noqa: E731
    out = {"epochs": epochs}
    runs = {}
    for name, fn in {"eager": lambda m: train(m, tensors, ref_cfg, gen(), progress=False),
                     "fast_nograph": lambda m: train(m, tensors, cfg, gen(), progress=False, graphs=False),
                     "fast_graph": lambda m: train(m, tensors, cfg, gen(), progress=False, graphs=True)}.items():
        model = copy.deepcopy(base)
        started = time.perf_counter()
        history = fn(model)
        runs[name] = (history, model)
        out[f"{name}_seconds"] = time.perf_counter() - started
    for name in ("fast_nograph", "fast_graph"):
        out[f"{name}_vs_eager_loss_rel"] = max_rel_diff(runs["eager"][0], runs[name][0])
        out[f"{name}_vs_eager_weights_abs"] = max_weight_diff(runs["eager"][1], runs[name][1])
    out["graph_vs_nograph_loss_rel"] = max_rel_diff(runs["fast_nograph"][0], runs["fast_graph"][0])
    # two seeds batched (graphs) against the single fast run of each seed
    b1 = a.build(a.dims)
    models = [copy.deepcopy(base), copy.deepcopy(b1)]
    singles = [copy.deepcopy(base), copy.deepcopy(b1)]
    seeds_runs = train_seeds(models, tensors, cfg, [gen(0), gen(1)], progress=False, graphs=True)
    rel, wdiff = 0.0, 0.0
    for s, (single, run_history) in enumerate(zip(singles, seeds_runs)):
        history = train(single, tensors, cfg, gen(s), progress=False, graphs=True)
        rel = max(rel, max_rel_diff(history, run_history))
        wdiff = max(wdiff, max_weight_diff(single, models[s]))
    out["seeds_graph_vs_fast_loss_rel"] = rel
    out["seeds_graph_vs_fast_weights_abs"] = wdiff
    return out


def classifier_checks(device: str, epochs: int) -> dict:
    g = torch.Generator(device=device).manual_seed(0)
    classes, dim, n = 200, 64, 50_000
    centres = torch.randn(classes, dim, generator=g, device=device)
    y = torch.randint(0, classes, (n,), generator=g, device=device)
    x = centres[y] + 0.8 * torch.randn(n, dim, generator=g, device=device)
    y_test = torch.randint(0, classes, (5000,), generator=g, device=device)
    x_test = centres[y_test] + 0.8 * torch.randn(5000, dim, generator=g, device=device)
    out = {"epochs": epochs}
    results = {}
    for name, fn in {"reference": clf_reference, "fast": clf_fast}.items():
        torch.cuda.synchronize() if device == "cuda" else None
        started = time.perf_counter()
        w, b = fn(x, y, classes, epochs, generator=torch.Generator(device=device).manual_seed(7))
        torch.cuda.synchronize() if device == "cuda" else None
        out[f"{name}_seconds"] = time.perf_counter() - started
        results[name] = (w, b)
    (w1, b1), (w2, b2) = results["reference"], results["fast"]
    out["bit_identical"] = bool(torch.equal(w1, w2) and torch.equal(b1, b2))
    out["max_abs_diff"] = float(max((w1 - w2).abs().max(), (b1 - b2).abs().max()))
    out["predictions_agree"] = float((predict(w1, b1, x_test) == predict(w2, b2, x_test)).float().mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", type=int, default=3, help="VAE epochs (default 3)")
    p.add_argument("--classifier-epochs", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    report = {"device": args.device, "torch": torch.__version__}
    for name, check, epochs in (("vae", vae_checks, args.epochs), ("classifier", classifier_checks, args.classifier_epochs)):
        try:
            report[name] = check(args.device, epochs)
        except Exception as exc:  # noqa: BLE001 - one failing check must not hide the others
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        print(name, json.dumps(report[name], indent=1, default=str), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

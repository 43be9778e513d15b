"""Where one CADA-VAE training step spends its time on the CPU: draw, gather, encode, decode, loss,
backward, optimiser, timed separately (wall and process CPU time), at an epoch with the
cross-reconstruction term off and at one with it on.

    python benchmarks/profile_step.py --threads 1 --steps 200                 # mmalign's policy
    python benchmarks/profile_step.py --threads 2 --steps 200 --wait ACTIVE   # OMP_WAIT_POLICY=ACTIVE

The wait policy is read by OpenMP when torch loads, so it is set in the environment of the process
(``--wait`` re-executes this script with it). Data: ``synthetic_like("CUB", seed=0)``, batch 50, the
default engine's step (fused AMSGrad, fp32 products through oneDNN or ``--linear aten``; ``--bf16``:
autocast). Timers synchronise nothing (CPU only) and cost ~1 us each. Prints a markdown table of ms
per step per phase; ``--json`` appends the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warm", type=int, default=20, help="untimed steps first")
    p.add_argument("--wait", choices=("PASSIVE", "ACTIVE"), help="re-run with OMP_WAIT_POLICY set")
    p.add_argument("--linear", choices=("auto", "aten", "onednn"), default="auto")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--bf32", action="store_true",
                   help="fp32 tensors, products computed by oneDNN in bf16 (float32 matmul precision 'medium')")
    p.add_argument("--ops", type=int, default=0, help="also print torch.profiler's N most expensive ops (self CPU)")
    p.add_argument("--json")
    args = p.parse_args()
    if args.wait and os.environ.get("OMP_WAIT_POLICY") != args.wait:
        os.environ["OMP_WAIT_POLICY"] = args.wait
        os.execv(sys.executable, [sys.executable, *sys.argv])

    import mmalign  # first: its wait policy applies unless --wait / the environment sets one
    import torch
    from mmalign.datasets.synthetic import synthetic_like
    from mmalign.model import compute_terms
    from mmalign.losses import draw_noise
    from mmalign.schedule import LossSchedule
    from mmalign.training.engines import _linear_mode, autocast_context, new_optimizer

    torch.set_num_threads(args.threads)
    if args.bf32:
        torch.set_float32_matmul_precision("medium")
    aligner = mmalign.Aligner(["image_features", "attributes"], config={"seed": 0, "device": "cpu"})
    data = synthetic_like("CUB", seed=0)
    tensors = aligner.training_tensors(data)
    config = aligner.config.training.model_copy(update={"precision": "bf16" if args.bf16 else "fp32"})
    model = aligner.build(aligner.dims)
    model.train()
    params = list(model.parameters())
    opt = new_optimizer(params, config, torch.device("cpu"))
    schedule = LossSchedule(model.terms, config.warmup)
    gen = torch.Generator().manual_seed(0)
    mode = _linear_mode(config, torch.device("cpu"), args.linear)
    n, b = tensors.num_samples, config.batch_size
    clock: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timer(name: str):
        w, c = time.perf_counter(), time.process_time()
        yield
        acc = clock.setdefault(name, [0.0, 0.0])
        acc[0] += time.perf_counter() - w
        acc[1] += time.process_time() - c

    def enc(name, x):
        with timer("encode"):
            return model.own_encode(name, x)

    def dec(name, z):
        with timer("decode"):
            return model.own_decode(name, z)

    def step(weights, active):
        with timer("draw"):
            idx = torch.randperm(n, generator=gen)[:b][None]
            eps = {m: draw_noise(model.reparameterization, b, model.latent_size, gen, "cpu")[None] for m in model.names}
        with timer("gather"):
            batch, masks = tensors.batch(idx)
        with timer("forward"):
            with autocast_context(torch.device("cpu"), config.precision), (mode or contextlib.nullcontext()):
                out = compute_terms(model, enc, dec, batch, masks, eps, weights, active)
        with timer("backward"):
            opt.zero_grad(set_to_none=True)
            out[:, -1].sum().backward()
        with timer("optimizer"):
            opt.step()

    rows = {}
    for regime, epoch in (("cross off (epoch 10)", 10), ("cross on (epoch 40)", 40)):
        weights = schedule.at(epoch)
        active = weights.active(model.families)
        for _ in range(args.warm):
            step(weights, active)
        clock.clear()
        w0, c0 = time.perf_counter(), time.process_time()
        with (torch.profiler.profile() if args.ops else contextlib.nullcontext()) as prof:
            for _ in range(args.steps):
                step(weights, active)
        if args.ops:
            print(regime)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
        total = (time.perf_counter() - w0, time.process_time() - c0)
        clock["forward"] = [clock["forward"][i] - clock["encode"][i] - clock["decode"][i] for i in (0, 1)]
        clock["loss (rest of forward)"] = clock.pop("forward")
        clock["total"] = list(total)
        rows[regime] = {k: (1e3 * v[0] / args.steps, 1e3 * v[1] / args.steps) for k, v in clock.items()}
    wait = os.environ.get("OMP_WAIT_POLICY", "(libgomp default)")
    print(f"threads {args.threads}, OMP_WAIT_POLICY {wait}, GOMP_SPINCOUNT {os.environ.get('GOMP_SPINCOUNT')}, linear {args.linear}, bf16 {args.bf16}, "
          f"load {os.getloadavg()[0]:.2f}; ms per step, wall / CPU")
    phases = list(next(iter(rows.values())))
    print("| phase | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for ph in phases:
        print(f"| {ph} | " + " | ".join(f"{r[ph][0]:.2f} / {r[ph][1]:.2f}" for r in rows.values()) + " |")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"threads": args.threads, "wait": wait, "linear": args.linear, "bf16": args.bf16,
                                "load1": os.getloadavg()[0], "ms": rows}) + "\n")


if __name__ == "__main__":
    main()

"""Time the latent classifier: plain reference loop vs the fast path, on CUB-shaped latents.

CUB GZSL, 0 shots: 150 seen classes x 200 image latents + 50 unseen classes x 400 embedding latents
= 50,000 latents of 64 dims, 200 classes, batch 32, 23 epochs (= 35,927 steps). The latents are
random with class structure (class centres plus noise). Both paths run with the same seed and the
same Adam kernel; the script checks they end with the same weights and prints both times (wall and
process CPU time, the fairer clock on a shared machine), the ratio and the machine. With the default
fused Adam it also times the reference with torch's default Adam (single-tensor on CPU): the
"plain loop" a user would write.

    python benchmarks/bench_classifier.py                      # full CUB-sized run
    python benchmarks/bench_classifier.py --epochs 2 --threads 1
    python benchmarks/bench_classifier.py --setting zsl         # 50 classes x 200, stream schedule
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from mmalign.protocols.classifier import (
    ClassifierHparams, adam_kernel, predict, steps_per_epoch, train_resident, train_reference,
)


def cub_latents(setting: str, device: torch.device, seed: int = 0, dim: int = 64):
    g = torch.Generator().manual_seed(seed)
    if setting == "gzsl":
        counts = [200] * 150 + [400] * 50
    else:
        counts = [200] * 50
    classes = len(counts)
    centres = torch.randn(classes, dim, generator=g) * 1.5
    y = torch.repeat_interleave(torch.arange(classes), torch.tensor(counts))
    x = centres[y] + torch.randn(y.numel(), dim, generator=g)
    return x.to(device), y.to(device), classes


def timed(fn, device: torch.device):
    """Result, wall seconds and CPU seconds of this process (the fairer clock on a shared machine)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("gzsl", "zsl"), default="gzsl")
    parser.add_argument("--epochs", type=int, default=23, help="classifier epochs (CUB GZSL 0-shot: 23)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both paths (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adam", choices=("auto", "fused", "single_tensor"), default="auto")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-default-baseline", action="store_true",
                        help="do not also time the reference with torch's default (single-tensor) Adam")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y, classes = cub_latents(args.setting, device, args.seed)
    hp = ClassifierHparams(adam=args.adam)
    schedule = "epoch" if args.setting == "gzsl" else "stream"
    steps = args.epochs * steps_per_epoch(x.shape[0], hp.batch_size, schedule)

    def run(impl, hparams):
        g = torch.Generator(device=device).manual_seed(args.seed)
        return impl(x, y, classes, args.epochs, generator=g, schedule=schedule, hparams=hparams)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    print(f"machine: {platform.platform()} | cpu {cpu!r} (platform.processor()={platform.processor()!r}) | "
          f"{os.cpu_count()} cores | torch {torch.__version__} | threads {torch.get_num_threads()} | device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"data: {x.shape[0]} latents x {x.shape[1]} dims, {classes} classes, {args.setting} ({schedule} schedule), "
          f"{args.epochs} epochs = {steps} steps of {hp.batch_size}")
    print(f"adam kernel: {adam_kernel(hp, device)}; times: wall s | process CPU s | us per step (wall)")

    def show(name, wall, cpu, note):
        print(f"{name:22s} {wall:7.2f} s wall {cpu:7.2f} s cpu {wall / steps * 1e6:7.1f} us/step  {note}")

    (wf, bf), wall_fast, cpu_fast = timed(lambda: run(train_resident, hp), device)
    show("fast", wall_fast, cpu_fast, "(default path; single-threaded on CPU)")
    if args.skip_reference:
        return
    (wr, br), wall_ref, cpu_ref = timed(lambda: run(train_reference, hp), device)
    show("reference", wall_ref, cpu_ref, "(DataLoader + autograd + torch.optim.Adam, same Adam kernel)")
    same = torch.equal(wf, wr) and torch.equal(bf, br)
    diff = max((wf - wr).abs().max().item(), (bf - br).abs().max().item())
    preds = torch.equal(predict(wf, bf, x), predict(wr, br, x))
    print(f"ratio reference/fast   {wall_ref / wall_fast:6.1f} x wall {cpu_ref / cpu_fast:6.1f} x cpu   identical weights: "
          f"{same} (max |diff| {diff:.2e}), identical predictions: {preds}")
    if hp.adam != "single_tensor" and not args.skip_default_baseline:
        default = ClassifierHparams(adam="single_tensor")
        (wd, bd), wall_def, cpu_def = timed(lambda: run(train_reference, default), device)
        show("reference, plain Adam", wall_def, cpu_def, "(torch.optim.Adam defaults on CPU: single-tensor)")
        diff = max((wf - wd).abs().max().item(), (bf - bd).abs().max().item())
        agree = (predict(wf, bf, x) == predict(wd, bd, x)).float().mean().item()
        print(f"ratio plain/fast       {wall_def / wall_fast:6.1f} x wall {cpu_def / cpu_fast:6.1f} x cpu   max |weight diff| "
              f"{diff:.2e} (other Adam kernel), predictions agree on {100 * agree:.3f}%")

if __name__ == "__main__":
    main()

"""Wall time of one CADA-VAE GZSL run, phase by phase, on synthetic CUB-shaped data.

Phases, timed separately:

1. VAE training, per path: ``reference`` (engine ``reference``: the plain loop), ``auto`` (engine
   ``auto``, fp32: the default), ``auto-bf16`` (bf16 autocast), ``auto-compile`` (``torch.compile``,
   only with ``--compile``), ``seeds`` (``--seeds`` runs trained together by
   :func:`mmalign.training.train_seeds`) next to ``auto x S`` (the same runs one after the other).
2. Latent sampling (training latents with noise + test means) and
3. the final classifier (fast and reference DataLoader loop), both through
   :func:`mmalign.protocols.evaluate` when that module is installed.

Data: :func:`mmalign.datasets.synthetic.synthetic_like` ("CUB": 7057 trainval images, 2048-d
features, 312-d attributes, 200 classes), batch 50, 100 epochs = 14200 steps.

Modes:

* default: every path really trains ``--epochs`` epochs; U/S/H are reported per path.
* ``--quick``: each path trains ``--quick-steps`` steps at an epoch with the cross-reconstruction
  term off and at one with it on (the two regimes of the warm-up), ``--rounds`` times interleaved
  (medians; ratios taken within a round); the 100-epoch time is EXTRAPOLATED as
  ``steps_off * t_off + steps_on * t_on`` and marked so in the table and the JSON. Sampling is run
  in full, the classifiers for ``--quick-clf-epochs`` epochs and extrapolated to the recipe's count.
  U/S/H of quick runs are meaningless and are not reported.
* ``--growth``: the cost-growth table: step time and peak memory for M = 2, 3, 4, 8 modalities
  (extra modalities alternate 2048-d per-sample and 312-d per-class ones) and 1x, 4x, 16x the
  training samples (epoch time = steps per epoch x step time; the step time is measured at that N,
  so the O(N) ``randperm`` per step is included). Each point runs in its own process so that peak
  RSS (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) belongs to that point alone.

``mmalign`` is imported before torch, so OpenMP waits with mmalign's short spin
(:mod:`mmalign.threads`); libgomp's default long spin made two threads 5-10x slower than one on
a shared CPU (SPEED.md).

Examples::

    python benchmarks/bench_speed.py --quick --threads 1 --json runs/speed_quick.json
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_speed.py --quick --threads 2
    python benchmarks/bench_speed.py --paths fast --epochs 100 --json runs/speed_full_fast.json
    python benchmarks/bench_speed.py --growth --threads 1 --json runs/speed_growth.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import mmalign  # first: sets OpenMP's wait policy before torch loads (mmalign.threads)
import numpy as np
import torch
from mmalign.training import Callback, EpochLog, TrainingTensors, train, train_seeds

#: "reference", or "auto" / "seeds" with optional "-bf16" and "-compile" or "-nograph" suffixes (e.g.
#: "seeds-bf16"). On CUDA "auto" and "seeds" replay each step as a CUDA graph; "-nograph" launches
#: the step's kernels one by one instead.
ALL_PATHS = ("reference", "auto", "auto-bf16", "auto-compile", "auto-bf16-compile", "auto-nograph", "auto-bf16-nograph",
             "seeds", "seeds-bf16", "seeds-compile", "seeds-bf16-compile", "seeds-nograph", "seeds-bf16-nograph")
DEFAULT_PATHS = ("reference", "auto", "auto-bf16", "seeds")


def is_seeds(path: str) -> bool:
    return path.startswith("seeds")


# -- data and models ---------------------------------------------------------------------------


def cub_like(seed: int):
    """Synthetic CUB-shaped data (falls back to random structured data if the generator is absent)."""
    try:
        from mmalign.datasets.synthetic import synthetic_like
    except ImportError:  # pragma: no cover - the generator ships with mmalign
        return _random_cub(seed)
    return synthetic_like("CUB", seed=seed)


def _random_cub(seed: int):
    rng = np.random.default_rng(seed)
    classes, n_tv, n_ts, n_tu = 200, 7057, 1764, 2967
    unseen = rng.choice(classes, 50, replace=False)
    seen = np.setdiff1d(np.arange(classes), unseen)
    centres = rng.random((classes, 2048)).astype(np.float32)
    att = rng.random((classes, 312)).astype(np.float32)
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    labels = np.concatenate([rng.choice(seen, n_tv + n_ts), rng.choice(unseen, n_tu)])
    feats = np.maximum(centres[labels] + 0.3 * rng.standard_normal((labels.size, 2048)).astype(np.float32), 0)
    idx = np.arange(labels.size)
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(classes)], sample_features={"features": feats},
        class_features={"attributes": att},
        splits={"trainval": idx[:n_tv], "test_seen": idx[n_tv:n_tv + n_ts], "test_unseen": idx[n_tv + n_ts:]},
        name="random_CUB",
    )


def make_aligner(seed: int, device: str, epochs: int) -> mmalign.Aligner:
    return mmalign.Aligner(["image_features", "attributes"],
                           config={"seed": seed, "device": device, "training": {"epochs": epochs}})


def subset(tensors: TrainingTensors, rows: int) -> TrainingTensors:
    """The first ``rows`` training samples (one epoch of the subset = rows / batch steps)."""
    idx = torch.arange(min(rows, tensors.num_samples), device=tensors.labels.device)
    return TrainingTensors(labels=tensors.labels[idx], sample={k: v[idx] for k, v in tensors.sample.items()},
                           by_class=dict(tensors.by_class), masks={k: v[idx] for k, v in tensors.masks.items()})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def regimes(config, epochs: int) -> dict[str, Any]:
    """Epochs with the cross term off / on, and a representative epoch of each."""
    schedule = mmalign.Aligner(["image_features", "attributes"], {"device": "cpu"}).schedule()
    pattern = lambda e: tuple(w != 0.0 for w in schedule.at(e).values())  # noqa: E731
    off = [e for e in range(epochs) if schedule.at(e)["cross"] == 0.0]
    on = [e for e in range(epochs) if schedule.at(e)["cross"] != 0.0]
    patterns = {pattern(e) for e in range(epochs)}

    def timed(epochs_in: list[int]) -> int | None:  # an epoch whose successor has the same weights pattern
        middle = sorted(epochs_in, key=lambda e: abs(e - epochs_in[len(epochs_in) // 2]))
        return next((e for e in middle if pattern(e) == pattern(e + 1)), middle[0] if middle else None)

    return {"off": len(off), "on": len(on), "epoch_off": timed(off) if off else None,
            "epoch_on": timed(on) if on else None, "patterns": len(patterns)}


class EpochMarks(Callback):
    """Calls ``fn(epoch)`` at every epoch end, after the device finished the epoch's work."""

    def __init__(self, fn: Callable[..., Any], device: torch.device) -> None:
        self.fn, self.device = fn, device

    def on_epoch_end(self, state, logs) -> None:
        sync(self.device)
        self.fn(state.epoch)


# -- one training call per path ----------------------------------------------------------------


def run_path(path: str, aligners: list[mmalign.Aligner], tensors: TrainingTensors, config, start_epoch: int,
             on_epoch_end: Callable[[int], None], threads: int | None) -> list[list[EpochLog]]:
    """Train ``aligners`` (fresh builds from their seeds) with ``path``; returns the histories."""
    device = aligners[0].device
    models = [a.build(a.dims) for a in aligners]
    gens = [torch.Generator(device=device).manual_seed(a.config.seed) for a in aligners]
    marks = [EpochMarks(on_epoch_end, device)]
    if path not in ALL_PATHS:
        raise SystemExit(f"unknown path {path!r}; choose from {ALL_PATHS}")
    if path == "reference":
        config = config.model_copy(update={"engine": "reference"})
        return [train(models[0], tensors, config, gens[0], start_epoch=start_epoch, progress=False, callbacks=marks,
                      num_threads=threads)]
    config = config.model_copy(update={"engine": "auto", "precision": "bf16" if "-bf16" in path else "fp32",
                                       "compile": path.endswith("-compile")})
    opts = {"start_epoch": start_epoch, "progress": False, "callbacks": marks, "num_threads": threads,
            "graphs": False if path.endswith("-nograph") else None}
    if is_seeds(path):
        return train_seeds(models, tensors, config, gens, **opts)
    return [train(models[0], tensors, config, gens[0], **opts)]


class Marks:
    """Wall and CPU clocks at every epoch end."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def start(self) -> None:
        self.wall, self.cpu = [time.perf_counter()], [time.process_time()]

    def __call__(self, epoch: int) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


# -- quick mode: per-step timings, extrapolated ---------------------------------------------------


def quick_vae(args, data, device) -> dict[str, Any]:
    template = make_aligner(args.seed, args.device, args.epochs)
    tensors = template.training_tensors(data)
    config = template.config.training
    steps_per_epoch = math.ceil(tensors.num_samples / config.batch_size)
    reg = regimes(config, args.epochs)
    sub = subset(tensors, args.quick_steps * config.batch_size)
    results: dict[str, dict[str, list[float]]] = {}
    first_epoch: dict[str, list[float]] = {}
    paths = list(args.paths)
    if any(is_seeds(p) for p in paths) and "auto" not in paths:
        paths.insert(0, "auto")
    for rnd in range(args.rounds):
        for path in paths:
            for regime in args.regimes:
                epoch = reg[f"epoch_{regime}"]
                if epoch is None:
                    continue
                seeds = args.seeds if is_seeds(path) else 1
                aligners = [make_aligner(args.seed + s, args.device, args.epochs) for s in range(seeds)]
                for a in aligners:
                    a.dims, a.normalisers = template.dims, template.normalisers
                cfg = config.model_copy(update={"epochs": epoch + 2})
                marks = Marks()
                marks.start()
                run_path(path, aligners, sub, cfg, epoch, marks, args.threads)
                # the second epoch is the steady state; the first includes set-up (and compilation)
                per_step = (marks.wall[2] - marks.wall[1]) / args.quick_steps
                cpu_step = (marks.cpu[2] - marks.cpu[1]) / args.quick_steps
                results.setdefault(f"{path}/{regime}", {"wall": [], "cpu": []})
                results[f"{path}/{regime}"]["wall"].append(per_step)
                results[f"{path}/{regime}"]["cpu"].append(cpu_step)
                first_epoch.setdefault(f"{path}/{regime}", []).append(marks.wall[1] - marks.wall[0] - per_step * args.quick_steps)
                print(f"  round {rnd + 1} {path:13s} cross {regime:3s}: {per_step * 1e3:7.1f} ms/step wall, "
                      f"{cpu_step * 1e3:7.1f} ms/step cpu", flush=True)
    out: dict[str, Any] = {"extrapolated": True, "steps_per_epoch": steps_per_epoch, "regimes": reg, "paths": {}}
    missing = [r for r in ("off", "on") if r not in args.regimes]
    for key in missing:  # time the missing regime as the measured one (noted in the JSON)
        other = "on" if key == "off" else "off"
        for path in paths:
            if f"{path}/{other}" in results:
                results[f"{path}/{key}"] = results[f"{path}/{other}"]
    out["regimes_timed"] = list(args.regimes)
    for path in paths:
        entry: dict[str, Any] = {}
        for regime in ("off", "on"):
            r = results.get(f"{path}/{regime}")
            if r:
                entry[f"step_ms_{regime}"] = 1e3 * statistics.median(r["wall"])
                entry[f"cpu_step_ms_{regime}"] = 1e3 * statistics.median(r["cpu"])
                entry[f"step_ms_{regime}_all"] = [1e3 * v for v in r["wall"]]
        total = steps_per_epoch * sum(reg[k] * entry.get(f"step_ms_{k}", 0.0) for k in ("off", "on")) / 1e3
        cpu_total = steps_per_epoch * sum(reg[k] * entry.get(f"cpu_step_ms_{k}", 0.0) for k in ("off", "on")) / 1e3
        entry["vae_seconds_extrapolated"] = total
        entry["vae_cpu_seconds_extrapolated"] = cpu_total
        if path.endswith("-compile"):
            overhead = statistics.median(first_epoch.get(f"{path}/on", []) + first_epoch.get(f"{path}/off", []))
            entry["compile_seconds_per_graph"] = overhead
            entry["compile_graphs"] = reg["patterns"]
            entry["vae_seconds_extrapolated"] = total + overhead * reg["patterns"]
        if is_seeds(path):
            entry["runs"] = args.seeds
        out["paths"][path] = entry
    # back-to-back ratios: per round, reference time / path time, then the median. The seeds path
    # trains S runs, so it is compared with S runs of the reference path one after the other.
    for path in paths:
        runs = args.seeds if is_seeds(path) else 1
        for ref in ("reference", "auto"):
            if ref == path or ref not in paths:
                continue
            ratios = []
            for i in range(args.rounds):
                num = sum(reg[k] * results[f"{path}/{k}"]["wall"][i] for k in ("off", "on") if f"{path}/{k}" in results)
                den = sum(reg[k] * results[f"{ref}/{k}"]["wall"][i] for k in ("off", "on") if f"{ref}/{k}" in results)
                ratios.append(runs * den / num)
            out["paths"][path][f"speedup_vs_{ref}"] = statistics.median(ratios)
    for path in paths:
        if is_seeds(path) and "auto" in out["paths"]:
            s = out["paths"][path]
            s["one_auto_run_seconds_extrapolated"] = out["paths"]["auto"]["vae_seconds_extrapolated"]
            s["vs_one_auto_run"] = s["vae_seconds_extrapolated"] / s["one_auto_run_seconds_extrapolated"]
    return out


# -- full mode: real training, U/S/H per path -----------------------------------------------------


def full_vae_path(args, data, device, path: str) -> tuple[dict[str, Any], list[mmalign.Aligner]]:
    """Train ``path`` for ``--epochs`` epochs; returns its timings and the trained aligners."""
    seeds = args.seeds if is_seeds(path) else 1
    aligners = [make_aligner(args.seed + s, args.device, args.epochs) for s in range(seeds)]
    tensors = aligners[0].training_tensors(data)
    for a in aligners[1:]:
        a.dims, a.normalisers = aligners[0].dims, aligners[0].normalisers
    warmup = None
    if device.type == "cuda":  # the process's first use of each kernel loads it (seconds): not the path's cost
        started = time.perf_counter()
        small = subset(tensors, 4 * aligners[0].config.training.batch_size)
        run_path(path, aligners, small, aligners[0].config.training.model_copy(update={"epochs": 1}), 0,
                 lambda epoch: None, args.threads)
        sync(device)
        warmup = time.perf_counter() - started
    marks = Marks()
    sync(device)
    marks.start()
    histories = run_path(path, aligners, tensors, aligners[0].config.training, 0, marks, args.threads)
    wall, cpu = marks.wall[-1] - marks.wall[0], marks.cpu[-1] - marks.cpu[0]
    for a, h in zip(aligners, histories):
        a.history = h
    entry = {"vae_seconds": wall, "vae_cpu_seconds": cpu, "epochs": args.epochs,
             "final_loss": [h[-1].terms["loss"] for h in histories],
             "epoch_seconds_median": statistics.median(e.seconds for e in histories[0])}
    if is_seeds(path):
        entry["runs"] = seeds
    if warmup is not None:
        entry["warmup_seconds_not_counted"] = warmup
    print(f"  {path:13s} {args.epochs} epochs: {wall:8.1f} s wall, {cpu:8.1f} s cpu, "
          f"final loss {entry['final_loss'][0]:.2f}", flush=True)
    return entry, aligners


# -- sampling and classifier ------------------------------------------------------------------------


def protocol_phase(args, data, aligners: dict[str, list[mmalign.Aligner]], quick: bool,
                   reference: bool = True) -> dict[str, Any]:
    try:
        from mmalign.protocols.evaluate import evaluate
        from mmalign.protocols.policies import fixed_epochs
    except ImportError:
        return {"skipped": "mmalign.protocols.evaluate is not installed"}
    clf_epochs = fixed_epochs("CUB", "gzsl", 0)
    out: dict[str, Any] = {"classifier_epochs": clf_epochs, "paths": {}}
    for path, group in aligners.items():
        rows = []
        for a in group[: args.protocol_runs or None]:
            if quick:
                res = evaluate(a, data, "gzsl", 0, policy="manual", epochs=args.quick_clf_epochs, seed=a.config.seed,
                               dataset_name="CUB", fast=True)
                res["seconds"]["classifier"] *= clf_epochs / args.quick_clf_epochs
            else:
                res = evaluate(a, data, "gzsl", 0, policy="fixed", seed=a.config.seed, dataset_name="CUB", fast=True)
            rows.append(res)
        entry = {"sampling_seconds": rows[0]["seconds"]["sampling"], "classifier_seconds": rows[0]["seconds"]["classifier"]}
        if not quick:
            entry.update({k: [r[k] for r in rows] for k in ("U", "S", "H")})
        out["paths"][path] = entry
        print(f"  {path:13s} sampling {entry['sampling_seconds']:.2f} s, classifier (fast) "
              f"{entry['classifier_seconds']:.2f} s" + ("" if quick else
              f", U/S/H {rows[0]['U']:.1f}/{rows[0]['S']:.1f}/{rows[0]['H']:.1f}"), flush=True)
        if reference and path == next(iter(aligners)) and args.ref_clf_epochs != 0:  # the reference DataLoader loop, once
            e = args.ref_clf_epochs or (args.quick_clf_epochs if quick else clf_epochs)
            ref = evaluate(group[0], data, "gzsl", 0, policy="manual", epochs=e, seed=group[0].config.seed,
                           dataset_name="CUB", fast=False)
            out["reference_classifier_seconds"] = ref["seconds"]["classifier"] * clf_epochs / e
            out["reference_classifier_extrapolated"] = e != clf_epochs
            print(f"  reference classifier (DataLoader): {out['reference_classifier_seconds']:.2f} s"
                  + (" (extrapolated)" if quick else ""), flush=True)
    return out


def quick_protocol_aligner(args, data) -> dict[str, list[mmalign.Aligner]]:
    """A briefly trained aligner: sampling and classifier time do not depend on training length."""
    from mmalign.threads import limit_threads

    limit_threads(args.threads)
    a = make_aligner(args.seed, args.device, 1)
    a.fit(data, progress=False)
    return {"auto (1 epoch)": [a]}


# -- growth table ------------------------------------------------------------------------------


def growth_point(args) -> dict[str, Any]:
    """One point of the growth table (run in its own process): ``--quick-steps`` steps of
    engine ``auto`` at epoch 30 (all terms on) on N = 7057 x factor samples."""
    m, factor = (int(v) for v in args.growth_point.split(","))
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n, classes = 7057 * factor, 200
    specs: list[dict[str, Any]] = []
    sample: dict[str, torch.Tensor] = {}
    by_class: dict[str, torch.Tensor] = {}
    for k in range(m):  # alternate image-like (2048-d per sample) and attribute-like (312-d per class)
        heavy = k % 2 == 0
        name = ("img" if heavy else "att") + ("" if k < 2 else str(k // 2 + 1))
        if heavy:
            specs.append({"kind": "image_features", "name": name, "source": name})
            sample[name] = torch.rand(n, 2048, generator=g)
        else:
            specs.append({"kind": "attributes", "name": name, "source": name})
            by_class[name] = torch.rand(classes, 312, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    rss_before = _rss_mb()
    aligner = mmalign.Aligner(specs, config={"seed": 0, "device": str(device)})
    model = aligner.build({s["name"]: (2048 if s["kind"] == "image_features" else 312) for s in specs})
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tensors = _StopAfter(labels=labels.to(device), sample={k: v.to(device) for k, v in sample.items()},
                         by_class={k: v.to(device) for k, v in by_class.items()})
    tensors.limit, tensors.device = args.quick_steps + 2, device
    config = aligner.config.training
    steps_per_epoch = math.ceil(n / config.batch_size)
    if device.type == "cuda":  # the step is one CUDA graph: batch() runs only at capture, so time epochs
        tensors = TrainingTensors(labels=tensors.labels, sample=tensors.sample, by_class=tensors.by_class)
        step, cpu_step = _time_epochs(model, tensors, config, steps_per_epoch)
    else:
        step, cpu_step = _time_steps(model, tensors, config, args.threads)
    out = {"M": m, "samples": factor, "N": n, "steps_per_epoch": steps_per_epoch,
           "step_ms": 1e3 * step, "cpu_step_ms": 1e3 * cpu_step, "epoch_seconds": steps_per_epoch * step,
           "cpu_epoch_seconds": steps_per_epoch * cpu_step,
           "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "data_MB": sum(v.numel() * 4 for v in {**sample, **by_class}.values()) / 2**20}
    if device.type == "cuda":
        out["peak_MB"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["memory"] = "torch.cuda.max_memory_allocated (data + model + training)"
    else:
        out["peak_MB"] = _peak_rss_mb()
        out["rss_before_model_MB"] = rss_before
        out["memory"] = "peak RSS of the process (ru_maxrss: interpreter + data + model + training)"
    return out


class _Stop(Exception):
    pass


class _StopAfter(TrainingTensors):
    """Training tensors that time every ``batch`` call and stop the loop after ``limit`` steps."""

    limit: int = 0
    device: torch.device = torch.device("cpu")

    def batch(self, idx):
        sync(self.device)
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())
        if len(self.times) > self.limit:
            raise _Stop
        return super().batch(idx)


def _time_steps(model, tensors: _StopAfter, config, threads) -> tuple[float, float]:
    """Median wall and CPU seconds per step (the first two steps are warm-up)."""
    tensors.times, tensors.cpu_times = [], []
    try:
        generator = torch.Generator(device=tensors.device).manual_seed(0)
        train(model, tensors, config.model_copy(update={"epochs": 31}), generator, start_epoch=30,
              progress=False, num_threads=threads)
    except _Stop:
        pass
    return float(np.median(np.diff(tensors.times[2:]))), float(np.median(np.diff(tensors.cpu_times[2:])))


def _time_epochs(model, tensors: TrainingTensors, config, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds per step from whole epochs 31 and 32 (epoch 30 captures the graph)."""
    marks = Marks()
    marks.start()
    generator = torch.Generator(device=tensors.labels.device).manual_seed(0)
    train(model, tensors, config.model_copy(update={"epochs": 33}), generator, start_epoch=30, progress=False,
          callbacks=[EpochMarks(marks, tensors.labels.device)])
    wall = min(marks.wall[2] - marks.wall[1], marks.wall[3] - marks.wall[2])
    cpu = min(marks.cpu[2] - marks.cpu[1], marks.cpu[3] - marks.cpu[2])
    return wall / steps, cpu / steps


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def growth(args) -> list[dict[str, Any]]:
    points = [(m, 1) for m in (2, 3, 4, 8)] + [(2, f) for f in (4, 16)]
    rows = []
    for m, f in points:
        cmd = [sys.executable, __file__, "--growth-point", f"{m},{f}", "--device", args.device,
               "--quick-steps", str(args.quick_steps)] + (["--threads", str(args.threads)] if args.threads else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"growth point M={m} x{f} failed")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  M={m} samples x{f:<2d}: {row['step_ms']:7.1f} ms/step ({row['cpu_step_ms']:7.1f} cpu), "
              f"epoch {row['epoch_seconds']:7.1f} s, peak {row['peak_MB']:7.0f} MB", flush=True)
    base = rows[0]
    for r in rows:
        r["step_vs_M2"] = r["step_ms"] / base["step_ms"]
        r["cpu_step_vs_M2"] = r["cpu_step_ms"] / base["cpu_step_ms"]
        r["epoch_vs_1x"] = r["epoch_seconds"] / base["epoch_seconds"]
        r["cpu_epoch_vs_1x"] = r["cpu_epoch_seconds"] / base["cpu_epoch_seconds"]
    return rows


# -- reporting ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name")), "?")
        flags = next((l for l in text.splitlines() if l.startswith("flags")), "")
        info["bf16_isa"] = [f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def table(vae: dict[str, Any], proto: dict[str, Any] | None) -> str:
    ex = vae["extrapolated"]
    lines = ["", "VAE training" + (" (EXTRAPOLATED from per-step times to the full run)" if ex else ""),
             f"{'path':14s} {'seconds':>10s} {'cpu s':>10s} {'vs reference':>9s} {'vs auto':>8s}",
             "(seeds xS: S runs together, compared with S runs one after the other)"]
    for path, e in vae["paths"].items():
        secs = e["vae_seconds_extrapolated"] if ex else e["vae_seconds"]
        cpu = e["vae_cpu_seconds_extrapolated"] if ex else e["vae_cpu_seconds"]
        name = f"{path} x{e['runs']}" if "runs" in e else path
        extra = f"   ({e['vs_one_auto_run']:.2f}x the time of ONE fast run)" if "vs_one_auto_run" in e else ""
        lines.append(f"{name:14s} {secs:10.1f} {cpu:10.1f} {e.get('speedup_vs_reference', float('nan')):9.2f} "
                     f"{e.get('speedup_vs_auto', float('nan')):8.2f}{extra}")
    if proto and "paths" in proto:
        lines += ["", "Protocol (GZSL, CUB classifier epochs)", f"{'path':16s} {'sampling s':>10s} {'clf s':>8s}  U/S/H"]
        for path, e in proto["paths"].items():
            ush = "/".join(f"{e[k][0]:.1f}" for k in ("U", "S", "H")) if "U" in e else "-"
            lines.append(f"{path:16s} {e['sampling_seconds']:10.2f} {e['classifier_seconds']:8.2f}  {ush}")
        if "reference_classifier_seconds" in proto:
            lines.append(f"reference classifier (DataLoader): {proto['reference_classifier_seconds']:.2f} s"
                         + (" (extrapolated)" if proto.get("reference_classifier_extrapolated") else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=100, help="VAE epochs of a full run (default 100)")
    p.add_argument("--quick", action="store_true", help="per-step timings, extrapolated to --epochs (marked as such)")
    p.add_argument("--quick-steps", type=int, default=20, help="steps per timed epoch in --quick/--growth (default 20)")
    p.add_argument("--quick-clf-epochs", type=int, default=2, help="classifier epochs timed in --quick (default 2)")
    p.add_argument("--ref-clf-epochs", type=int, default=None,
                   help="epochs of the reference (DataLoader) classifier, extrapolated to the recipe's count; "
                        "0 skips it (default: all in a full run, --quick-clf-epochs in --quick)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions in --quick (default 3)")
    p.add_argument("--regimes", default="off,on",
                   help="warm-up regimes timed in --quick: 'off' (cross term 0), 'on', or both (default); "
                        "a regime left out is extrapolated with the other's step time")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--seeds", type=int, default=2, help="runs trained together by the seeds path (default 2)")
    p.add_argument("--paths", default=",".join(DEFAULT_PATHS), help=f"comma-separated subset of {','.join(ALL_PATHS)}")
    p.add_argument("--compile", action="store_true", help="add the auto-compile path")
    p.add_argument("--protocol-runs", type=int, default=0,
                   help="evaluate only the first N runs of a seeds path (default 0: all)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--no-protocol", action="store_true", help="skip sampling and classifier")
    p.add_argument("--growth", action="store_true", help="only the cost-growth table")
    p.add_argument("--growth-point", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.growth_point:
        print(json.dumps(growth_point(args)))
        return 0
    args.paths = [s for s in args.paths.split(",") if s]
    args.regimes = [r for r in args.regimes.split(",") if r]
    if not args.regimes or any(r not in ("off", "on") for r in args.regimes):
        raise SystemExit(f"--regimes must be off, on or off,on; got {args.regimes}")
    if args.compile and "auto-compile" not in args.paths:
        args.paths.append("auto-compile")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":  # CUDA context and cuBLAS handles: set up before anything is timed
        for dtype in (torch.float32, torch.bfloat16):
            torch.ones(64, 64, device=device, dtype=dtype).matmul(torch.ones(64, 64, device=device, dtype=dtype))
        sync(device)
    result: dict[str, Any] = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "growth_point"}}
    print(f"machine: {result['machine']}", flush=True)
    if args.growth:
        result["growth"] = growth(args)
    else:
        started = time.perf_counter()
        data = cub_like(args.data_seed)
        result["data"] = {"name": data.name, "trainval": int(len(data.split("trainval"))),
                          "seconds": time.perf_counter() - started}
        print(f"data: {result['data']}", flush=True)
        if args.quick:
            vae = quick_vae(args, data, device)
            proto = None if args.no_protocol else protocol_phase(args, data, quick_protocol_aligner(args, data), True)
        else:  # path by path, saving after each, so a time limit keeps what finished
            vae = {"extrapolated": False, "paths": {}}
            proto = None if args.no_protocol else {"paths": {}}
            for i, path in enumerate(args.paths):
                vae["paths"][path], trained = full_vae_path(args, data, device, path)
                result["vae"], result["protocol"] = vae, proto
                save(result, args.json)
                if proto is not None:
                    part = protocol_phase(args, data, {path: trained}, False, reference=i == 0)
                    proto["paths"].update(part.pop("paths", {}))
                    proto.update(part)
                    save(result, args.json)
                del trained
        result["vae"], result["protocol"] = vae, proto
        if not args.quick:  # ratios of real runs (one process, back to back)
            fast = vae["paths"].get("auto", {}).get("vae_seconds")
            eager = vae["paths"].get("reference", {}).get("vae_seconds")
            for path, e in vae["paths"].items():
                runs = e.get("runs", 1)
                if eager and path != "reference":
                    e["speedup_vs_reference"] = runs * eager / e["vae_seconds"]
                if fast and path != "auto":
                    e["speedup_vs_auto"] = runs * fast / e["vae_seconds"]
                    if is_seeds(path):
                        e["vs_one_auto_run"] = e["vae_seconds"] / fast
        if proto and "paths" in proto:
            first = next(iter(proto["paths"].values()))
            for path, e in vae["paths"].items():
                secs = e.get("vae_seconds_extrapolated", e.get("vae_seconds"))
                pe = proto["paths"].get(path, first)
                e["gzsl_run_seconds"] = secs + pe["sampling_seconds"] + pe["classifier_seconds"]
        print(table(vae, proto))
        if proto and "paths" in proto:
            print("\nwhole GZSL run (VAE + sampling + fast classifier), seconds"
                  + (" (EXTRAPOLATED)" if args.quick else ""))
            for path, e in vae["paths"].items():
                print(f"  {path:14s} {e['gzsl_run_seconds']:10.1f}")
    save(result, args.json)
    if args.json:
        print(f"wrote {args.json}")
    return 0


def save(result: dict[str, Any], path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=float))
        tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

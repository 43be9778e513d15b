"""``mmalign benchmark``: CADA-VAE over seeds on a standard data set, next to the paper's numbers.

One VAE is trained per seed (few-shot images are moved only for the classifier, so the VAE never
sees them and one VAE serves every shot count); each (setting, shots) is then evaluated and its
record appended to ``<out>/results.json`` as soon as it finishes.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .aligner import Aligner
from .config import merge_tables
from .errors import ConfigError
from .recipes import load_recipe, load_references
from .results import append_result, config_hash, done_keys, read_results, run_key
from .runs import IMAGE, SIDE, DataSpec, default_modalities, load_data


@dataclass
class BenchmarkRequest:
    """What ``mmalign benchmark`` runs. ``epochs=None`` keeps the recipe's 100."""

    dataset: str
    data: DataSpec
    setting: str = "gzsl"
    shots: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    device: str = "auto"
    policy: str = "fixed"
    recipe: str = "cada_vae"
    reparameterization: str | None = None
    out: Path = Path("runs/benchmark")
    resume: bool = False
    progress: bool = True
    engine: str = "auto"
    precision: str = "fp32"
    #: train the seeds together as one stacked model: None = when faster (CUDA, engine auto)
    stack_seeds: bool | None = None
    max_classifier_epochs: int = 100
    classifier_epochs: int | None = None
    #: further aligner config values (nested, e.g. ``{"latent_size": 32}``), merged over the above
    aligner: dict[str, Any] = field(default_factory=dict)


def _aligner_config(req: BenchmarkRequest, seed: int) -> dict[str, Any]:
    cfg: dict[str, Any] = {"seed": seed, "device": req.device}
    cfg["training"] = {"engine": req.engine, "precision": req.precision}
    if req.epochs is not None:
        cfg["training"]["epochs"] = req.epochs
    if req.reparameterization is not None:
        cfg["reparameterization"] = req.reparameterization
    return merge_tables(cfg, req.aligner)


def _train(req: BenchmarkRequest, data, seed: int, split: str) -> Aligner:
    aligner = Aligner(default_modalities(req.data.side_info), _aligner_config(req, seed), recipe=req.recipe)
    aligner.fit(data, split=split, progress=req.progress)
    return aligner


def run_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every (seed, shots) of the request; returns this invocation's records (resumed ones too)."""
    from .protocols.evaluate import evaluate
    from .protocols.policies import fixed_epochs, validation_view

    if req.setting not in ("gzsl", "zsl"):
        raise ConfigError(f"--setting must be gzsl or zsl, got {req.setting!r}")
    if req.policy not in ("fixed", "val", "test", "manual"):
        raise ConfigError(f"--policy must be fixed, val or test, got {req.policy!r}")
    if req.policy == "manual" and not req.classifier_epochs:
        raise ConfigError("policy 'manual' needs --classifier-epochs N")
    if req.stack_seeds and req.engine == "reference":
        raise ConfigError("--stack-seeds needs --engine auto")
    load_recipe(req.recipe)
    results_path = Path(req.out) / "results.json"
    existing = read_results(results_path)
    data = load_data(req.data)
    _check_shots(data, req.shots)
    if req.policy == "fixed":  # fail before any training when the table has no entry
        for shots in req.shots:
            try:
                fixed_epochs(req.dataset, req.setting, shots, req.recipe)
            except ConfigError:
                raise ConfigError(
                    f"the {req.recipe!r} recipe has no classifier-epoch table for {req.dataset} ({req.setting}, "
                    f"{shots} shots); pass --classifier-epochs N, or --policy val to choose them on validation classes"
                ) from None
    done = done_keys(existing) if req.resume else set()
    records: list[dict[str, Any]] = []
    plan: list[tuple[int, list[int]]] = []  # (seed, shot counts still to run)
    for seed in req.seeds:
        todo = []
        for shots in req.shots:
            probe = _base_record(req, data, seed, shots, aligner=None)
            if run_key(probe) in done:
                records.extend(r for r in existing if run_key(r) == run_key(probe))
                log(f"resume: seed {seed}, {shots} shots already in {results_path}; skipped")
            else:
                todo.append(shots)
        if todo:
            plan.append((seed, todo))
    stacked = _stacked_vaes(req, data, [seed for seed, _ in plan]) if _stack(req, len(plan)) else {}
    for seed, todo in plan:
        if seed in stacked:
            aligner, vae_seconds = stacked[seed]
        else:
            started = time.perf_counter()
            aligner = _train(req, data, seed, "trainval")
            vae_seconds = time.perf_counter() - started
        selector, selection_data = None, None
        if req.policy == "val":  # a second VAE, trained on the training classes only
            selection_data = validation_view(data, seed=seed)
            selector = _train(req, selection_data, seed, "trainval")
        for shots in todo:
            record = _base_record(req, data, seed, shots, aligner)
            result = evaluate(
                aligner, data, setting=req.setting, shots=shots, image=IMAGE, side=SIDE, policy=req.policy,
                seed=seed, dataset_name=req.dataset, epochs=req.classifier_epochs, selection_aligner=selector,
                selection_data=selection_data, max_epochs=req.max_classifier_epochs,
            )
            record.update(_metrics(result))
            record["seconds"] = {"vae": round(vae_seconds, 3), **{k: round(v, 3) for k, v in result["seconds"].items()}}
            record["seeds_stacked"] = len(stacked) if seed in stacked else 1
            append_result(results_path, record)
            records.append(record)
            log(_one_line(record))
    return records


def _stack(req: BenchmarkRequest, runs: int) -> bool:
    """Whether to train the VAEs of several seeds together: asked for, or by default where that is
    faster (a GPU, where one CADA-VAE run leaves the device mostly idle; on a CPU the stacked
    products are slower than the oneDNN path of one run, benchmarks/SPEED.md)."""
    if runs < 2 or req.engine == "reference":
        return False
    if req.stack_seeds is not None:
        return req.stack_seeds
    from .aligner import resolve_device

    return resolve_device(req.device).type == "cuda"


def _stacked_vaes(req: BenchmarkRequest, data, seeds: list[int]) -> dict[int, tuple[Aligner, float]]:
    """Every seed's VAE trained together; each gets an equal share of the wall time."""
    started = time.perf_counter()
    template = Aligner(default_modalities(req.data.side_info), _aligner_config(req, seeds[0]), recipe=req.recipe)
    fitted = template.fit_seeds(data, seeds, progress=req.progress)
    share = (time.perf_counter() - started) / len(seeds)
    return {seed: (one, share) for seed, one in zip(seeds, fitted)}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def file_hashes(data) -> dict[str, str]:
    """sha256 of every file the data was read from."""
    files = data.meta.get("files", {})
    return {name: info["sha256"] for name, info in files.items() if isinstance(info, dict) and "sha256" in info}


def array_hash(data) -> str:
    """sha256 of the labels, splits and feature arrays (for generated data, which has no files)."""
    h = hashlib.sha256()
    for arr in [data.labels, *(data.splits[k] for k in sorted(data.splits)),
                *(data.sample_features[k] for k in sorted(data.sample_features)),
                *(data.class_features[k] for k in sorted(data.class_features))]:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _check_shots(data, shots: list[int]) -> None:
    """Every unseen class must keep at least one test image after moving ``k`` shots."""
    if not shots or max(shots) == 0:
        return
    labels = data.labels[data.split("test_unseen")]
    classes, counts = np.unique(labels, return_counts=True)
    k = max(shots)
    if counts.min() <= k:
        c = int(classes[counts.argmin()])
        raise ConfigError(
            f"--shots {k}: unseen class {data.class_names[c]!r} of {data.name} has only {counts.min()} test images "
            f"(at least {k + 1} are needed so some stay in the test set)"
        )


def _base_record(req: BenchmarkRequest, data, seed: int, shots: int, aligner: Aligner | None) -> dict[str, Any]:
    epochs = req.epochs if req.epochs is not None else load_recipe(req.recipe).training.epochs
    reparam = req.reparameterization or load_recipe(req.recipe).reparameterization
    record: dict[str, Any] = {
        "dataset": req.dataset.upper(), "setting": req.setting, "shots": shots, "seed": seed,
        "side_info": req.data.side_info, "reparameterization": reparam, "policy": req.policy,
        "epochs_vae": epochs, "synthetic": req.data.synthetic, "engine": req.engine, "precision": req.precision,
    }
    if aligner is not None:
        cfg = aligner.config.model_dump(mode="json")
        record.update({
            "recipe": req.recipe,
            "device": str(aligner.device),
            "device_name": device_name(aligner.device),
            "config_hash": config_hash({"aligner": cfg, "modalities": [m.describe() for m in aligner.modalities.values()]}),
            "data_hashes": file_hashes(data) or {"arrays": array_hash(data)},
            "data_name": data.name,
            "warnings": list(data.meta.get("warnings", [])),
            "mmalign_version": __version__,
            "torch_version": torch.__version__,
        })
    return record


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("S", "U", "H", "top1", "classifier_epochs", "selected_on", "selection", "classifier", "train_latents")
    return {k: result[k] for k in keep if k in result}


def _one_line(r: dict[str, Any]) -> str:
    if r["setting"] == "gzsl":
        score = f"U {r['U']:.1f}  S {r['S']:.1f}  H {r['H']:.1f}"
    else:
        score = f"top-1 {r['top1']:.1f}"
    secs = sum(r["seconds"].values())
    return f"{r['dataset']} {r['setting']} shots={r['shots']} seed={r['seed']}: {score}  ({secs:.0f} s)"


def summary_table(records: list[dict[str, Any]]) -> str:
    """mean +- std over seeds per (setting, shots), beside the paper's number and pass/fail."""
    refs = load_references()
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["setting"], r["shots"], r["side_info"], r["synthetic"]), []).append(r)
    lines = []
    header = f"{'dataset':8} {'setting':7} {'shots':>5} {'seeds':>5}  {'metric':6} {'mmalign':>14}  {'paper':>6}  result"
    lines += [header, "-" * len(header)]
    for (ds, setting, shots, side, synthetic), rs in sorted(groups.items()):
        ref = refs.find(ds, setting, shots, side)
        metrics = ("U", "S", "H") if setting == "gzsl" else ("top1",)
        for m in metrics:
            values = np.array([r[m] for r in rs], dtype=float)
            mean, std = values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)
            paper = getattr(ref, m, None) if ref is not None else None
            if synthetic:
                verdict = "n/a (synthetic data)"
            elif paper is None:
                verdict = "no reference"
            else:
                verdict = "pass" if abs(mean - paper) <= refs.tolerance else f"FAIL (|diff| > {refs.tolerance})"
            paper_s = f"{paper:6.1f}" if paper is not None else "     -"
            lines.append(f"{ds:8} {setting:7} {shots:>5} {len(rs):>5}  {m:6} {mean:7.2f} +- {std:4.2f}  {paper_s}  {verdict}")
    return "\n".join(lines)


def phase_times(records: list[dict[str, Any]]) -> str:
    """Mean wall seconds per phase (VAE training, latent sampling, classifier, ...) over the runs,
    per device and engine; the phases are those the records hold, in their order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r.get("device_name", r.get("device", "?")), r.get("engine", "auto"),
                           r.get("precision", "fp32")), []).append(r)
    lines = ["wall seconds per phase (mean over runs)"]
    for (device, engine, precision), rs in groups.items():
        phases = list(dict.fromkeys(k for r in rs for k in r.get("seconds", {})))
        means = ", ".join(f"{k} {np.mean([r['seconds'].get(k, 0.0) for r in rs]):.1f}" for k in phases)
        total = np.mean([sum(r.get("seconds", {}).values()) for r in rs])
        lines.append(f"  {device}, engine {engine} {precision}, {len(rs)} run(s): {means}; total {total:.1f}")
    return "\n".join(lines)


"""``mmalign benchmark``: CADA-VAE over seeds on a standard data set, next to the paper's numbers.

One VAE is trained per seed (few-shot images are moved only for the classifier, so the VAE never
sees them and one VAE serves every shot count); each (setting, shots) is then evaluated and its
record (:class:`~mmalign.schema.ResultRecord`) appended to ``<out>/results.json`` as soon as it
finishes. ``save_models`` also keeps each seed's checkpoint in ``<out>/models/seed<N>`` (for
``mmalign report``'s latent map).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .aligner import Aligner
from .config import merge_tables
from .errors import ConfigError
from .evaluation_record import evaluation_record
from .memory import check_model_memory
from .outputs import check_not_input, check_output_dir, saved_or_rescued
from .preflight import check_evaluations, data_dims, data_files
from .recipes import load_recipe
from .records import check_rerun, load_records, write_record
from .runs import IMAGE, SIDE, DataSpec, RunConfig, default_modalities, load_data, side_array
from .schema import ResultRecord


@dataclass
class BenchmarkRequest:
    """What ``mmalign benchmark`` runs. ``epochs=None`` keeps the recipe's 100; ``resume`` skips
    and ``force`` replaces records already in ``out``; ``callbacks`` are passed to training."""

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
    force: bool = False
    progress: bool = True
    engine: str = "auto"
    precision: str = "fp32"
    #: train the seeds together as one stacked model: None = when faster (CUDA, engine auto)
    stack_seeds: bool | None = None
    max_classifier_epochs: int = 100
    classifier_epochs: int | None = None
    save_models: bool = False
    callbacks: Sequence[Any] = ()
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


def _train(req: BenchmarkRequest, data, seed: int, split: str, callbacks: Sequence[Any] = ()) -> Aligner:
    aligner = Aligner(default_modalities(req.data.side_info, data), _aligner_config(req, seed), recipe=req.recipe)
    aligner.fit(data, split=split, progress=req.progress, callbacks=list(callbacks))
    return aligner


def run_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = print) -> list[ResultRecord]:
    """Run every (seed, shots) of the request; returns this invocation's records (resumed ones too).

    A (config, seed) already in ``<out>/results.json`` is refused before anything runs, unless
    ``req.resume`` (it is skipped) or ``req.force`` (it is run again and its record replaced)."""
    from .protocols.evaluate import evaluate
    from .protocols.policies import validation_view

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
    check_output_dir(req.out, writes=("results.json",))
    existing = load_records(results_path)
    data = load_data(req.data)
    plan = {(seed, shots): check_rerun(existing, _key_fields(req, seed, shots, data), results_path, req.resume,
                                       req.force) for seed in req.seeds for shots in req.shots}
    _preflight(req, data)
    records: list[ResultRecord] = []
    todo_by_seed: list[tuple[int, list[int]]] = []  # (seed, shot counts still to run)
    for seed in req.seeds:
        todo = []
        for shots in req.shots:
            if plan[(seed, shots)] is not None:
                records.append(plan[(seed, shots)])
                log(f"resume: seed {seed}, {shots} shots already in {results_path}; skipped")
            else:
                todo.append(shots)
        if todo:
            todo_by_seed.append((seed, todo))
    stacked = _stacked_vaes(req, data, [seed for seed, _ in todo_by_seed]) if _stack(req, len(todo_by_seed)) else {}
    for seed, todo in todo_by_seed:
        if seed in stacked:
            aligner, vae_seconds = stacked[seed]
        else:
            started = time.perf_counter()
            aligner = _train(req, data, seed, "trainval", req.callbacks)
            vae_seconds = time.perf_counter() - started
        selector, selection_data = None, None
        if req.policy == "val":  # a second VAE, trained on the training classes only
            selection_data = validation_view(data, seed=seed)
            selector = _train(req, selection_data, seed, "trainval")
        for shots in todo:
            result = evaluate(
                aligner, data, setting=req.setting, shots=shots, image=IMAGE, side=SIDE, policy=req.policy,
                seed=seed, dataset_name=req.dataset, epochs=req.classifier_epochs, selection_aligner=selector,
                selection_data=selection_data, max_epochs=req.max_classifier_epochs,
            )
            record = evaluation_record(
                "benchmark", result, aligner, data, _key_fields(req, seed, shots, data),
                seconds={"vae": vae_seconds, **result["seconds"]},
                details={"recipe": req.recipe, "data_name": data.name, "warnings": list(data.meta.get("warnings", [])),
                         "seeds_stacked": len(stacked) if seed in stacked else 1},
            )
            saved_or_rescued(results_path.parent, "results",
                             lambda folder: write_record(folder / "results.json", record, replace=req.force),
                             "the record of this run")
            records.append(record)
            log(_one_line(record))
            for tracker in req.callbacks:
                if hasattr(tracker, "log_metrics"):
                    tracker.log_metrics({f"{req.setting}_{shots}shots/{k}": v for k, v in record.metrics.items()})
        if req.save_models:
            aligner.run_config = RunConfig(data=req.data, aligner=_aligner_config(req, seed)).model_dump(mode="json")
            saved = aligner.save(Path(req.out) / "models" / f"seed{seed}")
            for tracker in req.callbacks:
                if hasattr(tracker, "log_checkpoint"):
                    tracker.log_checkpoint(saved)
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
    template = Aligner(default_modalities(req.data.side_info, data), _aligner_config(req, seeds[0]), recipe=req.recipe)
    fitted = template.fit_seeds(data, seeds, progress=req.progress, callbacks=list(req.callbacks))
    share = (time.perf_counter() - started) / len(seeds)
    return {seed: (one, share) for seed, one in zip(seeds, fitted)}


def _preflight(req: BenchmarkRequest, data) -> None:
    """Everything every requested run needs, checked before the first one trains: the output
    folder, every seed's config, the device, the memory, every shot count and its epoch table."""
    from .protocols.policies import fixed_epochs

    check_not_input([Path(req.out) / "results.json"], data_files(data), "--out")
    aligners = []
    for seed in req.seeds:
        aligner = Aligner(default_modalities(req.data.side_info, data), _aligner_config(req, seed), recipe=req.recipe)
        aligner.device  # noqa: B018 - resolves (and checks) the device
        aligners.append(aligner)
    first = aligners[0]
    check_model_memory(first.modalities, data_dims(first.modalities, data), first.config.latent_size, first.device)
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
    check_evaluations(data, req.setting, req.shots, req.seeds, "test" if req.policy == "fixed" else req.policy,
                      req.dataset, req.recipe, req.max_classifier_epochs)


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



def _key_fields(req: BenchmarkRequest, seed: int, shots: int, data) -> dict[str, Any]:
    """The fields that identify one benchmark record (all known before training)."""
    recipe = load_recipe(req.recipe)
    names = [spec["name"] for spec in default_modalities(req.data.side_info, data)]
    return {
        "command": "benchmark", "dataset": req.dataset.upper(), "setting": req.setting, "shots": shots, "seed": seed,
        "side_info": side_array(req.data.side_info, data), "modalities": names, "method": "aligner",
        "reparameterization": req.reparameterization or recipe.reparameterization, "policy": req.policy,
        "epochs_vae": req.epochs if req.epochs is not None else recipe.training.epochs,
        "synthetic": req.data.synthetic, "engine": req.engine, "precision": req.precision,
        "overrides": dict(req.aligner),
    }


def _one_line(r: ResultRecord) -> str:
    m = r.metrics
    score = f"U {m['U']:.1f}  S {m['S']:.1f}  H {m['H']:.1f}" if r.setting == "gzsl" else f"top-1 {m['top1']:.1f}"
    return f"{r.dataset} {r.setting} shots={r.shots} seed={r.seed}: {score}  ({sum(r.seconds.values()):.0f} s)"

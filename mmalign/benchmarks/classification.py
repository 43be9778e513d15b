"""The latent-classifier benchmarks (CUB, SUN, AWA1, AWA2, APY, FLO, a folder, a plugin's data set):
CADA-VAE over seeds, GZSL / ZSL / few-shot, next to the paper's numbers.

One VAE is trained per seed (few-shot images are moved only for the classifier, so the VAE never
sees them and one VAE serves every shot count); each (setting, shots) is then evaluated and its
record (`ResultRecord`) appended to ``<out>/results.json`` as soon as
it finishes. ``save_models`` also keeps each seed's checkpoint in ``<out>/models/<config>/seed<N>``
(for ``mmalign report``'s latent map), keyed like the records and under the same
``--resume``/``--force`` rules.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..aligner import Aligner
from ..config import merge_tables
from ..errors import ConfigError
from ..memory import check_model_memory
from ..outputs import check_not_input, check_output_dir, saved_or_rescued
from ..preflight import check_evaluations, data_dims, data_files
from ..protocols.policies import EpochPolicy, FixedEpochs, ValidationEpochs, make_policy
from ..recipes import DEFAULT_RECIPE, Recipe, load_recipe
from ..records.build import evaluation_record
from ..records.files import check_rerun, load_records, write_record
from ..records.schema import ResultRecord
from ..records.store import config_hash
from ..data import AlignmentData
from ..runs import IMAGE, SIDE, DataSpec, RunConfig, default_modalities, load_data, side_array
from .base import Benchmark
from .flags import add_protocol_flags, add_tracking_flags, check_run_flags, protocol_policy


@dataclass
class BenchmarkRequest:
    """What a classification benchmark runs. ``epochs=None`` keeps the recipe's; ``resume`` skips
    and ``force`` replaces records (and saved models) already in ``out``; ``callbacks`` are passed
    to training. ``recipe`` and ``policy`` may be given by name; `run_benchmark` loads them once."""

    dataset: str
    data: DataSpec
    setting: str = "gzsl"
    shots: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    device: str = "auto"
    policy: EpochPolicy | str = "fixed"
    recipe: Recipe | str = DEFAULT_RECIPE
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

    def __post_init__(self) -> None:
        # the one load of the recipe and the one parse of the policy for the whole request
        self.recipe = load_recipe(self.recipe)
        if not isinstance(self.policy, EpochPolicy):
            self.policy = make_policy(self.policy, self.classifier_epochs)
        self.out = Path(self.out)


def aligner_config(req: BenchmarkRequest, seed: int) -> dict[str, Any]:
    """The aligner config overrides of one seed's run (over the request's recipe)."""
    cfg: dict[str, Any] = {"seed": seed, "device": req.device}
    cfg["training"] = {"engine": req.engine, "precision": req.precision}
    if req.epochs is not None:
        cfg["training"]["epochs"] = req.epochs
    if req.reparameterization is not None:
        cfg["reparameterization"] = req.reparameterization
    return merge_tables(cfg, req.aligner)


def new_aligner(req: BenchmarkRequest, seed: int, data: AlignmentData) -> Aligner:
    return Aligner(default_modalities(req.data.side_info, data), aligner_config(req, seed), recipe=req.recipe)


def key_fields(req: BenchmarkRequest, seed: int, shots: int, data: AlignmentData) -> dict[str, Any]:
    """The fields that identify one benchmark record (all known before training)."""
    recipe = req.recipe
    names = [spec["name"] for spec in default_modalities(req.data.side_info, data)]
    return {
        "command": "benchmark", "dataset": req.dataset.upper(), "setting": req.setting, "shots": shots, "seed": seed,
        "side_info": side_array(req.data.side_info, data), "modalities": names, "method": "aligner",
        "recipe": recipe.name,
        "reparameterization": req.reparameterization or recipe.reparameterization, "policy": req.policy.name,
        "epochs_vae": req.epochs if req.epochs is not None else recipe.training.epochs,
        "synthetic": req.data.synthetic, "engine": req.engine, "precision": req.precision,
        "overrides": dict(req.aligner),
    }


def model_dir(req: BenchmarkRequest, seed: int, data: AlignmentData) -> Path:
    """Where ``save_models`` keeps one seed's checkpoint: keyed by the record's identity without
    the seed and the shot count (one VAE serves every shot count)."""
    identity = {k: v for k, v in key_fields(req, seed, 0, data).items() if k not in ("seed", "shots")}
    return req.out / "models" / config_hash(identity)[:12] / f"seed{seed}"


def run_benchmark(req: BenchmarkRequest, log: Callable[[str], None] = print) -> list[ResultRecord]:
    """Run every (seed, shots) of the request; returns this invocation's records (resumed ones too).

    A (config, seed) already in ``<out>/results.json`` is refused before anything runs, unless
    ``req.resume`` (it is skipped) or ``req.force`` (it is run again and its record replaced)."""
    from ..protocols.evaluate import evaluate

    if req.setting not in ("gzsl", "zsl"):
        raise ConfigError(f"--setting must be gzsl or zsl, got {req.setting!r}")
    if req.stack_seeds and req.engine == "reference":
        raise ConfigError("--stack-seeds needs --engine auto")
    results_path = req.out / "results.json"
    check_output_dir(req.out, writes=("results.json",))
    existing = load_records(results_path)  # a corrupt results file is refused before the data load
    data = load_data(req.data)  # the key names the data set's own modalities
    plan = {(seed, shots): check_rerun(existing, key_fields(req, seed, shots, data), results_path, req.resume,
                                       req.force) for seed in req.seeds for shots in req.shots}
    todo_by_seed: list[tuple[int, list[int]]] = []  # (seed, shot counts still to run)
    records: list[ResultRecord] = []
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
    _preflight(req, data, [seed for seed, _ in todo_by_seed])
    stacked = _stacked_vaes(req, data, [seed for seed, _ in todo_by_seed]) if _stack(req, len(todo_by_seed)) else {}
    for seed, todo in todo_by_seed:
        if seed in stacked:
            aligner, vae_seconds = stacked[seed]
        else:
            started = time.perf_counter()
            aligner = new_aligner(req, seed, data)
            aligner.fit(data, progress=req.progress, callbacks=list(req.callbacks))
            vae_seconds = time.perf_counter() - started
        selector, selection_data = None, None
        if req.policy.needs_selection_model:
            selector, selection_data = ValidationEpochs.selection_model(aligner, data, seed, progress=req.progress)
        for shots in todo:
            result = evaluate(
                aligner, data, setting=req.setting, shots=shots, image=IMAGE, side=SIDE, policy=req.policy,
                seed=seed, dataset_name=req.dataset, selection_aligner=selector, selection_data=selection_data,
                max_epochs=req.max_classifier_epochs, recipe=req.recipe,
            )
            record = evaluation_record(
                "benchmark", result, aligner, data, key_fields(req, seed, shots, data),
                seconds={"vae": vae_seconds, **result["seconds"]},
                details={"recipe": req.recipe.name, "data_name": data.name,
                         "warnings": list(data.meta.get("warnings", [])),
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
            aligner.run_config = RunConfig(data=req.data, aligner=aligner_config(req, seed)).model_dump(mode="json")
            saved = aligner.save(model_dir(req, seed, data))
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
    from ..aligner import resolve_device

    return resolve_device(req.device).type == "cuda"


def _stacked_vaes(req: BenchmarkRequest, data, seeds: list[int]) -> dict[int, tuple[Aligner, float]]:
    """Every seed's VAE trained together; each gets an equal share of the wall time."""
    started = time.perf_counter()
    template = new_aligner(req, seeds[0], data)
    fitted = template.fit_seeds(data, seeds, progress=req.progress, callbacks=list(req.callbacks))
    share = (time.perf_counter() - started) / len(seeds)
    return {seed: (one, share) for seed, one in zip(seeds, fitted)}


def _preflight(req: BenchmarkRequest, data, todo_seeds: list[int]) -> None:
    """Everything every requested run needs, checked before the first one trains: the output
    folder (and saved models), every seed's config, the device, the memory, every shot count and
    its epoch table."""
    check_not_input([req.out / "results.json"], data_files(data), "--out")
    aligners = []
    for seed in req.seeds:
        aligner = new_aligner(req, seed, data)
        aligner.device  # noqa: B018 - resolves (and checks) the device
        aligners.append(aligner)
    first = aligners[0]
    check_model_memory(first.modalities, data_dims(first.modalities, data), first.config.latent_size, first.device)
    if isinstance(req.policy, FixedEpochs):  # fail before any training when the table has no entry
        for shots in req.shots:
            try:
                req.policy.check(req.recipe, req.dataset, req.setting, shots)
            except ConfigError:
                raise ConfigError(
                    f"the {req.recipe.describe()} recipe has no classifier-epoch table for {req.dataset} "
                    f"({req.setting}, {shots} shots); pass --classifier-epochs N, or --policy val to choose them on "
                    "validation classes"
                ) from None
    check_evaluations(data, req.setting, req.shots, req.seeds, req.policy, req.dataset, req.recipe,
                      req.max_classifier_epochs)
    if req.save_models and not (req.resume or req.force):
        for seed in todo_seeds:
            folder = model_dir(req, seed, data)
            if folder.exists():
                raise ConfigError(f"{folder} already holds the saved model of this configuration and seed {seed}; "
                                  "pass --resume to keep finished runs or --force to run again and replace it")


def _one_line(r: ResultRecord) -> str:
    m = r.metrics
    score = f"U {m['U']:.1f}  S {m['S']:.1f}  H {m['H']:.1f}" if r.setting == "gzsl" else f"top-1 {m['top1']:.1f}"
    return f"{r.dataset} {r.setting} shots={r.shots} seed={r.seed}: {score}  ({sum(r.seconds.values()):.0f} s)"


class ClassificationBenchmark(Benchmark):
    """The xlsa17 GZSL / ZSL / few-shot protocols on one data set (a card name, or a data set a
    plugin registers)."""

    summary = "GZSL / ZSL / few-shot with the latent classifier, beside the paper's numbers"

    def __init__(self, name: str, summary: str | None = None) -> None:
        self.name = name
        if summary:
            self.summary = summary

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="data root holding <DATASET>/ (custom: the data set folder itself)")
        p.add_argument("--synthetic", action="store_true", help="generated data with the data set's exact layout")
        p.add_argument("--side-info", choices=("attributes", "sentences"),
                       help="class side information (default attributes)")
        add_protocol_flags(p)
        stack = p.add_mutually_exclusive_group()
        stack.add_argument("--stack-seeds", dest="stack_seeds", action="store_const", const=True, default=None,
                           help="train all seeds' VAEs together as one stacked model (default: on a GPU)")
        stack.add_argument("--no-stack-seeds", dest="stack_seeds", action="store_const", const=False,
                           help="train the seeds one after the other")
        p.add_argument("--save-models", action="store_true",
                       help="keep each seed's checkpoint in OUT/models/<config>/seed<N> (for the latent map of "
                            "'mmalign report')")
        p.add_argument("--skip-card-check", action="store_true", help="run on files that differ from the data set card")
        add_tracking_flags(p)

    def data_spec(self, args: argparse.Namespace) -> tuple[str, DataSpec]:
        """The record's data-set name and where the data comes from."""
        spec = DataSpec(dataset=self.name.upper(), data_dir=args.data_dir, synthetic=args.synthetic,
                        side_info=args.side_info or "attributes", skip_card_check=args.skip_card_check)
        return self.name, spec

    def request(self, args: argparse.Namespace, recipe: Recipe) -> BenchmarkRequest:
        check_run_flags(args)
        policy = protocol_policy(args)
        dataset, spec = self.data_spec(args)
        from ..tracking import make_trackers

        trackers = make_trackers(args.log, Path(args.out), tracking_uri=args.tracking_uri,
                                 params={"benchmark": self.name, "data": spec, "setting": args.setting,
                                         "policy": policy.name, "recipe": recipe.name})
        return BenchmarkRequest(
            dataset=dataset, data=spec, setting=args.setting, shots=list(args.shots),
            seeds=list(range(args.first_seed, args.first_seed + args.seeds)), epochs=args.epochs,
            device=args.device, policy=policy, recipe=recipe, classifier_epochs=args.classifier_epochs,
            max_classifier_epochs=args.max_classifier_epochs, reparameterization=args.reparameterization,
            out=Path(args.out), resume=args.resume, force=args.force, engine=args.engine, precision=args.precision,
            stack_seeds=args.stack_seeds, save_models=args.save_models, progress=not args.no_progress,
            callbacks=trackers,
        )

    def run(self, request: BenchmarkRequest, log: Callable[[str], None]) -> list[ResultRecord]:
        return run_benchmark(request, log=log)


class FolderBenchmark(ClassificationBenchmark):
    """``custom``: the same protocols on a folder in the xlsa17 layout (``--data-dir D/NAME``)."""

    summary = "the classification protocols on your own classes in the xlsa17 layout (--data-dir D/NAME)"

    def __init__(self) -> None:
        super().__init__("custom")

    def data_spec(self, args: argparse.Namespace) -> tuple[str, DataSpec]:
        if not args.data_dir:
            raise ConfigError("'mmalign benchmark custom' needs --data-dir pointing at the data set folder (D/NAME)")
        if args.synthetic:
            raise ConfigError("--synthetic needs a named data set (cub, sun, awa1, awa2, apy, flo), not custom")
        folder = Path(args.data_dir).resolve()  # a path, never a card name
        spec = DataSpec(dataset=str(folder), data_dir=None, synthetic=False, side_info=args.side_info or "attributes",
                        skip_card_check=args.skip_card_check)
        return Path(args.data_dir).name, spec

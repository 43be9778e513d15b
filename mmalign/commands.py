"""Sub-commands beyond ``plugins``: train, eval, benchmark, data."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .cli_args import BENCHMARKS, add_protocol_flags, benchmark_name, check_protocol_flags
from .errors import ConfigError, MmalignError
from .resume import STATE_FILE
from .train_output import prepare_output, resume_hint
from .threads import limit_threads

CUB_TEXT_MODALITIES = ("att", "sent", "wiki")
#: ``--text-vectors`` -> ``run_cub_text(recompute=...)``
_TEXT_VECTORS = {"auto": "auto", "shipped": "never", "recompute": "always"}


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an aligner from a run config (TOML/JSON) into a checkpoint directory")
    p.add_argument("config", help="run config file (see mmalign.runs)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--epochs", type=int, help="override the number of VAE epochs")
    p.add_argument("--device", help="auto, cpu, cuda")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save the full training state to OUT every N epochs (atomically)")
    p.add_argument("--resume", action="store_true", help="continue from the training state saved in OUT")
    p.add_argument("--force", action="store_true", help="overwrite a checkpoint (and its results.json) already in OUT")
    p.add_argument("--keep-state", action="store_true",
                   help="keep the training state in OUT after a successful end (default: removed)")
    p.add_argument("--deterministic", action="store_true", help="use only deterministic kernels (GPU)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and the BLAS libraries")
    p.add_argument("--engine", choices=("auto", "reference"),
                   help="training path (default: the config's, auto): auto = the fastest path that agrees with the "
                        "reference on this device; reference = the plain PyTorch loop")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast of the matrix products (engine auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (GZSL/ZSL, few-shot) on the data it was trained for")
    p.add_argument("checkpoint", help="checkpoint directory written by 'mmalign train'")
    p.add_argument("--seed", type=int, help="seed of sampling and classifier (default: the training seed)")
    p.add_argument("--data-dir", help="override the data root recorded in the checkpoint")
    p.add_argument("--device", help="auto, cpu, cuda")
    add_protocol_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (--policy val trains a VAE)")
    add_rerun_arguments(p, "CHECKPOINT/results.json")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("benchmark", help="reproduce CADA-VAE on a benchmark and compare with the paper",
                       description="Runs append to OUT/results.json (default runs/benchmark/results.json).")
    p.add_argument("dataset", type=benchmark_name, metavar="DATASET",
                   help=f"one of {', '.join(BENCHMARKS)} (any case), or a data set a plugin registers: a "
                        "standard data set, 'custom' with --data-dir D/NAME, or 'cub-text' (real CUB class "
                        "attributes, sentence embeddings and Wikipedia text; cross-modal retrieval, no download)")
    p.add_argument("--data-dir", help="data root holding <DATASET>/ (custom: the data set folder itself)")
    p.add_argument("--synthetic", action="store_true", help="generated data with the data set's exact layout")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed")
    p.add_argument("--side-info", choices=("attributes", "sentences"), help="class side information (default attributes)")
    p.add_argument("--epochs", type=int, help="VAE epochs (default: the recipe's 100)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    add_protocol_flags(p)
    p.add_argument("--engine", choices=("auto", "reference"), default="auto",
                   help="training path: auto (default) = the fastest path that agrees with the reference on this "
                        "device (CUDA graph on a GPU, fused Adam + oneDNN or MKL products on a CPU); reference = the plain PyTorch loop")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16 autocast of the matrix products (engine auto; recorded in every result)")
    stack = p.add_mutually_exclusive_group()
    stack.add_argument("--stack-seeds", dest="stack_seeds", action="store_const", const=True, default=None,
                       help="train all seeds' VAEs together as one stacked model (default: on a GPU)")
    stack.add_argument("--no-stack-seeds", dest="stack_seeds", action="store_const", const=False,
                       help="train the seeds one after the other")
    p.add_argument("--recipe", default="cada_vae", help="recipe in registry/recipes")
    p.add_argument("--reparameterization", choices=("cada2019", "standard"), help="override the recipe's mode")
    p.add_argument("--out", default="runs/benchmark", help="folder for results.json (default runs/benchmark)")
    add_rerun_arguments(p, "OUT/results.json")
    p.add_argument("--save-models", action="store_true",
                   help="keep each seed's checkpoint in OUT/models/seed<N> (for the latent map of 'mmalign report')")
    p.add_argument("--skip-card-check", action="store_true", help="run on files that differ from the data set card")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_tracking_arguments(p)
    g = p.add_argument_group("cub-text only")
    g.add_argument("--modalities", nargs="+", choices=CUB_TEXT_MODALITIES, metavar="M",
                   help="modalities to align, at least two of att, sent, wiki (default: all three)")
    g.add_argument("--baselines", nargs="*", choices=("ridge", "cca"), metavar="B",
                   help="linear baselines beside the aligner: ridge, cca (default: both; none when given no value)")
    g.add_argument("--text-vectors", choices=tuple(_TEXT_VECTORS),
                   help="Wikipedia sentence vectors: re-encode when the MiniLM model is installed (auto), the "
                        "shipped ones, or always re-encode (default auto)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("schema", help="print the JSON Schema of a file mmalign writes")
    p.add_argument("what", choices=("results",), help="results: results.json of benchmark, eval and cub-text")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("report", help="turn run folders into one HTML page with figures (needs mmalign[report])")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a checkpoint (mmalign train), or a folder with results.json (benchmark, eval, cub-text)")
    p.add_argument("--out", default="report", help="folder for index.html and the PNGs (default report/)")
    p.add_argument("--data-dir", help="data root for the latent map (default: the one the checkpoint recorded)")
    p.add_argument("--max-points", type=int, default=1500, metavar="N",
                   help="most test images in the latent map (default 1500; t-SNE time grows with N)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and t-SNE")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run a grid / random search of benchmark runs from SWEEP.toml, locally or on Ray")
    p.add_argument("sweep", help="the sweep file ([fixed], [grid], [random], [execution] tables)")
    p.add_argument("--out", default="runs/sweep", help="folder for results.json (and failures.json)")
    p.add_argument("--resume", action="store_true", help="skip the runs already recorded in OUT/results.json")
    p.add_argument("--list", action="store_true", help="list and count the runs, run nothing")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: the free cores; 1 runs in this process); with a local "
                        "--ray, the CPUs of the Ray it starts")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="one Ray task per run: a local Ray started on demand, or the cluster at ADDRESS")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs each run requests (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs each run requests (default 0)")
    p.add_argument("--threads", type=int, metavar="N", help="torch/BLAS threads per run (default: cores / workers)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("data", help="fetch benchmark data")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    d = data_sub.add_parser("download", help="download, verify and unpack a public release")
    d.add_argument("release", choices=("xlsa17",))
    d.add_argument("--data-dir", help="where to unpack (default: $MMALIGN_DATA_DIR, then the cache)")
    d.add_argument("--url", help="override the download address")
    d.add_argument("--sha256", help="expected sha256 of the archive; a download that differs is deleted and refused")
    d.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    d.set_defaults(func=cmd_data_download)
    d = data_sub.add_parser("convert-pickle", help="convert a numpy pickle (e.g. CUB_supporting_data.p) to "
                            "safetensors once, loading nothing but arrays and plain containers")
    d.add_argument("src", help="the pickle file")
    d.add_argument("dst", help="the .safetensors file to write (atomically)")
    d.set_defaults(func=cmd_data_convert_pickle)


def add_rerun_arguments(p: argparse.ArgumentParser, where: str) -> None:
    p.add_argument("--resume", action="store_true", help=f"skip runs already recorded in {where}")
    p.add_argument("--force", action="store_true", help=f"run again and replace records already in {where}")


def add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", choices=("tensorboard", "mlflow"), action="append", default=[],
                   help="track training: tensorboard (mmalign[tensorboard]) or mlflow (mmalign[mlflow]); repeatable")
    p.add_argument("--tracking-uri", help="mlflow tracking URI (default: a local store in the output folder)")


def _trackers(args: argparse.Namespace, out: Path, params: dict) -> list:
    """The tracking callbacks ``--log`` asks for (checked before any training starts)."""
    from .tracking import make_trackers

    return make_trackers(args.log, out, tracking_uri=args.tracking_uri, params=params)


def _check_rerun_flags(args: argparse.Namespace) -> None:
    if args.resume and args.force:
        raise ConfigError("--resume keeps recorded runs and --force replaces them; pass only one")


def cmd_train(args: argparse.Namespace) -> int:
    from .aligner import Aligner
    from .checkpoint import CONFIG, MODEL, NORMALISERS
    from .memory import TRAINING_COPIES, check_model_memory
    from .outputs import check_not_input, check_output_dir, check_room, saved_or_rescued
    from .preflight import data_dims, data_files
    from .resume import load_training_state
    from .runs import load_data, read_run_config

    run = read_run_config(args.config)
    limit_threads(args.threads)
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    out = Path(args.out)
    resuming = prepare_output(out, resume=args.resume, force=args.force)
    overrides = dict(run.aligner)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device:
        overrides["device"] = args.device
    if args.epochs is not None:
        overrides["training"] = {**overrides.get("training", {}), "epochs": args.epochs}
    for key in ("engine", "precision"):
        if getattr(args, key) is not None:
            overrides["training"] = {**overrides.get("training", {}), key: getattr(args, key)}
    try:
        aligner = Aligner(run.modality_specs(), overrides)
        device = aligner.device
    except MmalignError as exc:
        raise type(exc)(f"{args.config}: {exc}") from None
    # everything is checked before the first epoch: the output folder, memory, room, the saved state
    writes = [Path(args.out) / name for name in (CONFIG, MODEL, NORMALISERS, STATE_FILE, "results.json")]
    check_output_dir(args.out, inputs=[Path(args.config)], writes=[p.name for p in writes])
    data = load_data(run.data)
    check_not_input(writes, data_files(data), "--out")
    need = check_model_memory(aligner.modalities, data_dims(aligner.modalities, data), aligner.config.latent_size,
                              device, where=str(args.config))
    weights = need // TRAINING_COPIES
    state_bytes = weights * (TRAINING_COPIES - 1) if args.checkpoint_every else 0
    check_room(args.out, 2 * (weights + state_bytes), "--out")  # old and new copy live together during a replace
    start = 0
    if resuming:  # checked (and reported) before the first epoch
        import torch

        start = load_training_state(out, torch.Generator(device=device))["epochs_done"]
    if args.deterministic:
        from .determinism import enable_determinism

        enable_determinism()
    from .training.distributed import init_from_env, shutdown

    group = init_from_env(aligner.config.device)  # under torchrun: one data-parallel run
    primary = group is None or group.primary  # rank 0 alone tracks, saves and prints
    try:
        trackers = _trackers(args, out, {"aligner": aligner.config, "data": run.data}) if primary else []
        aligner.run_config = run.model_dump(mode="json")
        if start and primary:
            print(f"resumed from epoch {start} of {aligner.config.training.epochs} (training state in {out})",
                  flush=True)
        try:
            aligner.fit(data, progress=not args.no_progress and primary, checkpoint_dir=out,
                        checkpoint_every=args.checkpoint_every, resume=args.resume, callbacks=trackers)
        except KeyboardInterrupt:
            if primary:
                print(f"mmalign: interrupted; {resume_hint(args)}", file=sys.stderr)
            return 130
        if not primary:
            return 0
        path = saved_or_rescued(out, "checkpoint", aligner.save, "the trained model")
    finally:
        shutdown()
    final = aligner.history[-1].terms["loss"] if aligner.history else float("nan")
    for tracker in trackers:
        tracker.log_metrics({"final_loss": final})
        tracker.log_checkpoint(path)
    state = out / STATE_FILE
    kept = ""
    if state.exists():
        if args.keep_state:
            kept = f"; kept the training state {state}"
        else:
            state.unlink()
    ranks = f" on {group.world_size} ranks ({group.backend})" if group is not None else ""
    print(f"trained {', '.join(aligner.names)} on {data.name} (seed {aligner.config.seed}){ranks}; "
          f"final loss {final:.4g}; saved {path}{kept}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps import InProcess, LocalPool, RayTasks, free_workers, read_sweep, run_sweep

    sweep = read_sweep(args.sweep)  # validated whole before anything runs
    print(f"sweep {args.sweep}: {len(sweep.runs)} run(s)" + (f" over {', '.join(sweep.varying)}" if sweep.varying else ""))
    if args.list:
        for i, run in enumerate(sweep.runs):
            print(f"{i + 1:>4}  {run.id}  {run.describe(sweep.varying)}")
        return 0
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.ray and args.workers is not None:
        raise ConfigError("--workers sizes a local pool or a local Ray; a Ray cluster at ADDRESS places the runs "
                          "itself (use --cpus-per-run)")
    workers = args.workers or free_workers()
    threads = args.threads or max(1, free_workers() // workers)
    if args.ray is not None:
        executor = RayTasks(args.ray or None, args.cpus_per_run, args.gpus_per_run, threads,
                            local_cpus=args.workers)
    elif workers == 1:
        executor = InProcess(threads)
    else:
        executor = LocalPool(workers, threads)
    report = run_sweep(sweep, args.out, executor, resume=args.resume, progress=not args.no_progress,
                       log=lambda line: print(line, flush=True))
    print(f"sweep done in {report.seconds:.1f} s: {len(report.appended)} record(s) appended, "
          f"{report.skipped} run(s) skipped as done, {len(report.failures)} failed")
    for failure in report.failures:
        print(f"failed: run {failure['run']} {failure['params']} after {failure['attempts']} attempt(s): "
              f"{failure['error']}", file=sys.stderr)
    print(f"results: {Path(args.out) / 'results.json'}")
    return 1 if report.failures else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .aligner import Aligner
    from .checkpoint import read_config
    from .evaluation_record import evaluation_record
    from .outputs import check_output_dir, saved_or_rescued
    from .preflight import check_evaluations, data_files
    from .protocols.evaluate import evaluate
    from .records import check_rerun, load_records, write_record
    from .runs import IMAGE, SIDE, load_data, parse_run_config
    from .tables import print_results

    _check_rerun_flags(args)
    policy = check_protocol_flags(args)
    cfg = read_config(args.checkpoint)
    if "run" not in cfg:
        raise ConfigError(f"{args.checkpoint}/config.json: no 'run' section (which data it was trained on); "
                          "checkpoints written by 'mmalign train' have one")
    run = parse_run_config(cfg["run"], f"{args.checkpoint}/config.json: run")
    if args.data_dir:
        run.data.data_dir = args.data_dir
    results_path = Path(args.checkpoint) / "results.json"
    existing = load_records(results_path)  # a corrupt results file is refused before any work
    aligner = Aligner.load(args.checkpoint, device=args.device)
    names = aligner.names
    image = IMAGE if IMAGE in names else names[0]
    side = SIDE if SIDE in names else names[1]
    seed = aligner.config.seed if args.seed is None else args.seed
    path = results_path
    training = aligner.config.training

    def key(shots: int) -> dict:
        return {"command": "eval", "dataset": Path(run.data.dataset).name.upper(), "setting": args.setting, "shots": shots, "seed": seed,
                "side_info": run.data.side_info, "modalities": [image, side], "method": "aligner",
                "reparameterization": aligner.config.reparameterization, "policy": policy,
                "epochs_vae": training.epochs, "synthetic": run.data.synthetic,
                "engine": getattr(training, "engine", None), "precision": getattr(training, "precision", None)}

    plan = {shots: check_rerun(existing, key(shots), path, args.resume, args.force) for shots in args.shots}
    data = load_data(run.data)
    check_evaluations(data, args.setting, args.shots, [seed], policy, run.data.dataset,
                      max_epochs=args.max_classifier_epochs)
    check_output_dir(args.checkpoint, option="checkpoint", writes=("results.json",), inputs=data_files(data))
    selector, selection_data = None, None
    if policy == "val" and any(v is None for v in plan.values()):  # a second VAE, on the training classes only
        from .protocols.policies import validation_view

        selection_data = validation_view(data, seed=seed)
        fresh = [type(m)(name=m.name, **m.options.model_dump()) for m in aligner.modalities.values()]
        selector = Aligner(fresh, aligner.config, recipe=None, catalog=aligner.catalog)
        selector.fit(selection_data, progress=not args.no_progress)
    records = []
    for shots in args.shots:
        if plan[shots] is not None:
            print(f"resume: {args.setting}, {shots} shots, seed {seed} already in {path}; skipped")
            records.append(plan[shots])
            continue
        result = evaluate(aligner, data, setting=args.setting, shots=shots, image=image, side=side,
                          policy=policy, seed=seed, dataset_name=run.data.dataset, epochs=args.classifier_epochs,
                          selection_aligner=selector, selection_data=selection_data,
                          max_epochs=args.max_classifier_epochs)
        record = evaluation_record("eval", result, aligner, data, key(shots), seconds=result["seconds"],
                                   details={"checkpoint": str(args.checkpoint)})
        saved_or_rescued(path.parent, "results", lambda folder: write_record(folder / "results.json", record, replace=args.force),
                         "the record of this evaluation")
        records.append(record)
    print_results(records, path)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import BenchmarkRequest, run_benchmark
    from .runs import DataSpec
    from .tables import print_results

    _check_rerun_flags(args)
    if args.dataset == "cub-text":
        return cmd_benchmark_cub_text(args)
    policy = check_protocol_flags(args)
    given = [flag for flag, value in (("--modalities", args.modalities), ("--baselines", args.baselines),
                                      ("--text-vectors", args.text_vectors)) if value is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to 'mmalign benchmark cub-text' only")
    if args.precision != "fp32" and args.engine != "auto":
        raise ConfigError("--precision bf16 needs --engine auto")
    if args.dataset == "custom":
        if not args.data_dir:
            raise ConfigError("'mmalign benchmark custom' needs --data-dir pointing at the data set folder (D/NAME)")
        if args.synthetic:
            raise ConfigError("--synthetic needs a named data set (cub, sun, awa1, awa2, apy, flo), not custom")
        dataset, data_dir = str(Path(args.data_dir).resolve()), None  # a path, never a card name
    else:
        dataset, data_dir = args.dataset.upper(), args.data_dir
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    spec = DataSpec(dataset=dataset, data_dir=data_dir, synthetic=args.synthetic, side_info=args.side_info or "attributes",
                    skip_card_check=args.skip_card_check)
    req = BenchmarkRequest(
        dataset=args.dataset if args.dataset != "custom" else Path(args.data_dir).name, data=spec,
        setting=args.setting, shots=list(args.shots), seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
        epochs=args.epochs, device=args.device, policy=policy, recipe=args.recipe,
        classifier_epochs=args.classifier_epochs, max_classifier_epochs=args.max_classifier_epochs,
        reparameterization=args.reparameterization, out=Path(args.out), resume=args.resume, force=args.force,
        engine=args.engine, precision=args.precision, stack_seeds=args.stack_seeds, save_models=args.save_models,
        progress=not args.no_progress,
        callbacks=_trackers(args, Path(args.out), {"benchmark": args.dataset, "data": spec, "setting": args.setting,
                                                   "policy": policy, "recipe": args.recipe}),
    )
    try:
        records = run_benchmark(req, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"mmalign: interrupted; the finished runs are in {Path(args.out) / 'results.json'}, and the same "
              "command with --resume skips them", file=sys.stderr)
        return 130
    print_results(records, Path(args.out) / "results.json")
    return 0


#: Flags of ``benchmark`` that mean nothing to ``cub-text`` (class-level retrieval, shipped data,
#: both settings reported, no classifier), with why.
CUB_TEXT_REJECTS = {
    "synthetic": ("--synthetic", "it runs on the real CUB class data shipped with mmalign"),
    "data_dir": ("--data-dir", "its data ships with mmalign"),
    "skip_card_check": ("--skip-card-check", "its data ships with mmalign"),
    "setting": ("--setting", "it reports retrieval among the unseen classes (zsl) and among all classes (gzsl)"),
    "shots": ("--shots", "retrieval moves no unseen samples into training"),
    "side_info": ("--side-info", "it chooses among att, sent and wiki with --modalities"),
    "policy": ("--policy", "retrieval trains no classifier"),
    "classifier_epochs": ("--classifier-epochs", "retrieval trains no classifier"),
    "max_classifier_epochs": ("--max-classifier-epochs", "retrieval trains no classifier"),
    "stack_seeds": ("--stack-seeds", "it trains one Aligner per seed and alignment"),
    "save_models": ("--save-models", "it trains many small aligners and keeps none"),
}


def cmd_benchmark_cub_text(args: argparse.Namespace) -> int:
    """Zero-shot cross-modal retrieval among the real CUB classes (see mmalign.retrieval)."""
    from .outputs import check_output_dir
    from .retrieval.cub_text import run_cub_text
    from .tables import print_results

    given = [flag for key, (flag, _) in CUB_TEXT_REJECTS.items() if getattr(args, key) not in (None, False)]
    if given:
        why = next(w for f, w in CUB_TEXT_REJECTS.values() if f == given[0])
        raise ConfigError(f"benchmark cub-text does not take {', '.join(given)}: {why}")
    limit_threads(args.threads)
    if args.deterministic:
        from .determinism import enable_determinism

        enable_determinism()
    if args.precision != "fp32" and args.engine != "auto":
        raise ConfigError("--precision bf16 needs --engine auto")
    if args.log:
        raise ConfigError("--log tracks 'mmalign train' and the xlsa17 benchmarks; cub-text trains many small "
                          "aligners and does not support it")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    check_output_dir(args.out, writes=("results.json", "table.md"))
    given = {"epochs": args.epochs, "modalities": args.modalities, "baselines": args.baselines}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
    device = "cpu" if args.device == "auto" and not _cuda() else ("cuda" if args.device == "auto" else args.device)
    overrides: dict = {"training": {"engine": args.engine, "precision": args.precision}}
    if args.reparameterization is not None:
        overrides["reparameterization"] = args.reparameterization
    records = run_cub_text(seeds=range(args.first_seed, args.first_seed + args.seeds), out=Path(args.out),
                           device=device, progress=not args.no_progress, resume=args.resume, force=args.force,
                           recipe=args.recipe, aligner_overrides=overrides,
                           recompute=_TEXT_VECTORS[args.text_vectors or "auto"], **kwargs)
    print_results(records, Path(args.out) / "results.json")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import results_json_schema

    print(json.dumps(results_json_schema(), indent=2))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    limit_threads(args.threads)
    if args.max_points < 10:
        raise ConfigError(f"--max-points must be at least 10, got {args.max_points}")
    page = make_report([Path(r) for r in args.runs], Path(args.out), data_dir=args.data_dir,
                       max_points=args.max_points, log=lambda line: print(line, file=sys.stderr))
    print(f"report: {page}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cmd_data_convert_pickle(args: argparse.Namespace) -> int:
    from .safe_unpickle import convert_pickle_to_safetensors

    from .outputs import check_output_file

    src = Path(args.src)
    check_output_file(args.dst, "convert-pickle destination", inputs=[src],
                      need_bytes=src.stat().st_size if src.is_file() else 0)  # arrays take about the pickle's size
    keys = convert_pickle_to_safetensors(args.src, args.dst)
    print(f"wrote {len(keys)} tensor(s) to {args.dst}: {', '.join(keys)}")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from .datasets.locate import download_xlsa17, resolve_data_dir

    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise ConfigError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    dest = resolve_data_dir(args.data_dir)
    kwargs = {"url": args.url} if args.url else {}
    path = download_xlsa17(dest, sha256=args.sha256, progress=not args.no_progress, **kwargs)
    print(f"xlsa17 is ready in {path}", file=sys.stderr)
    return 0

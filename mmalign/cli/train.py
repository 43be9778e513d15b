"""``mmalign train CONFIG --out DIR``: train an aligner from a run config into a checkpoint.

A folder with a finished checkpoint or an unfinished run's training state is refused unless
``--force`` (train again; the stale ``results.json`` goes too) or ``--resume`` (continue the state).
Under ``torchrun`` the ranks train one data-parallel run; rank 0 tracks, saves and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..benchmarks.flags import add_engine_flags, add_tracking_flags
from ..checkpoint import CONFIG
from ..errors import ConfigError, MmalignError
from ..hooks import hookimpl
from ..resume import STATE_FILE
from ..threads import limit_threads
from .common import trackers as make_trackers


def prepare_output(out: Path, resume: bool, force: bool) -> bool:
    """Check ``train --out`` before any work; returns whether a training state will be resumed.

    A finished checkpoint or a run's training state in ``out`` is refused unless ``force`` (which
    removes them and the stale ``results.json``) or ``resume`` (which continues the state)."""
    state, finished = out / STATE_FILE, (out / CONFIG).is_file()
    if resume and force:
        raise ConfigError("--resume continues the run in --out and --force starts it over; pass one of them")
    if resume:
        if state.is_file():
            return True
        if finished:
            raise ConfigError(f"--resume: {out} holds a finished checkpoint and no training state (it is removed "
                              "when a run ends, unless --keep-state); pass --force to train it again")
        print(f"mmalign: --resume: no training state in {out}; starting from scratch", file=sys.stderr, flush=True)
        return False
    if (finished or state.is_file()) and not force:
        what = "a checkpoint" if finished else "the training state of an unfinished run"
        raise ConfigError(f"--out {out} already holds {what}; pass --resume to continue it or --force to overwrite it")
    if force:
        for stale in (state, out / "results.json"):
            stale.unlink(missing_ok=True)
    return False


def resume_hint(args: argparse.Namespace) -> str:
    """What the interrupt message of ``mmalign train`` tells the user to run next."""
    if args.checkpoint_every is None:
        return "nothing was saved (with --checkpoint-every N a run can be continued with --resume)"
    return (f"the training state saved every {args.checkpoint_every} epoch(s) in {args.out} continues with: "
            f"mmalign train {args.config} --out {args.out} --checkpoint-every {args.checkpoint_every} --resume")


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an aligner from a run config (TOML/JSON) into a checkpoint directory")
    p.add_argument("config", help="run config file, TOML or JSON (docs: 'Training from a config file', docs/configs.md)")
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
    add_engine_flags(p, default=None)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_flags(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..aligner import Aligner
    from ..checkpoint import CONFIG, MODEL, NORMALISERS
    from ..memory import TRAINING_COPIES, check_model_memory
    from ..outputs import check_not_input, check_output_dir, check_room, saved_or_rescued
    from ..preflight import data_dims, data_files
    from ..resume import load_training_state
    from ..runs import load_data, read_run_config
    from ..tracking import check_tracking
    from ..training.distributed import check_env

    run = read_run_config(args.config)
    check_env()  # a torchrun environment that would hang or fall back to one process: refused now
    check_tracking(args.log, args.out, args.tracking_uri)  # trackers checked before any data is read
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
        from ..determinism import enable_determinism

        enable_determinism()
    from ..training.distributed import init_from_env, shutdown

    group = init_from_env(aligner.config.device)  # under torchrun: one data-parallel run
    primary = group is None or group.primary  # rank 0 alone tracks, saves and prints
    try:
        trackers = make_trackers(args, out, {"aligner": aligner.config, "data": run.data}) if primary else []
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



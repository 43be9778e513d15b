"""``mmalign eval CHECKPOINT``: the latent-classifier protocols on a trained checkpoint, with the
benchmarks' protocol flags, recorded in ``CHECKPOINT/results.json`` with the recipe it was trained
with."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..benchmarks.flags import add_protocol_flags, add_rerun_flags, add_threads_flags, check_rerun_flags, protocol_policy
from ..errors import ConfigError
from ..hooks import hookimpl
from .common import apply_threads_flags


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint (GZSL/ZSL, few-shot) on the data it was trained for")
    p.add_argument("checkpoint", help="checkpoint directory written by 'mmalign train'")
    p.add_argument("--seed", type=int, help="seed of sampling and classifier (default: the training seed)")
    p.add_argument("--data-dir", help="override the data root recorded in the checkpoint")
    p.add_argument("--device", help="auto, cpu, cuda")
    add_protocol_flags(p)
    add_threads_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (--policy val trains a VAE)")
    add_rerun_flags(p, "CHECKPOINT/results.json")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..aligner import Aligner
    from ..checkpoint import read_config
    from ..outputs import check_output_dir, saved_or_rescued
    from ..preflight import check_evaluations, data_files
    from ..protocols.evaluate import evaluate
    from ..protocols.policies import ValidationEpochs
    from ..recipes import load_recipe
    from ..records.build import evaluation_record
    from ..records.files import check_rerun, load_records, write_record
    from ..records.tables import print_results
    from ..runs import IMAGE, SIDE, load_data, parse_run_config

    check_rerun_flags(args)
    policy = protocol_policy(args)
    apply_threads_flags(args)
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
    recipe = aligner.recipe or load_recipe()  # the recipe it was trained with (saved in the checkpoint)
    names = aligner.names
    image = IMAGE if IMAGE in names else names[0]
    side = SIDE if SIDE in names else names[1]
    seed = aligner.config.seed if args.seed is None else args.seed
    training = aligner.config.training

    def key(shots: int) -> dict:
        return {"command": "eval", "dataset": Path(run.data.dataset).name.upper(), "setting": args.setting,
                "shots": shots, "seed": seed, "side_info": run.data.side_info, "modalities": [image, side],
                "method": "aligner", "recipe": recipe.name, "reparameterization": aligner.config.reparameterization,
                "policy": policy.name, "epochs_vae": training.epochs, "synthetic": run.data.synthetic,
                "engine": training.engine, "precision": training.precision}

    plan = {shots: check_rerun(existing, key(shots), results_path, args.resume, args.force) for shots in args.shots}
    data = load_data(run.data)
    check_evaluations(data, args.setting, args.shots, [seed], policy, run.data.dataset, recipe,
                      max_epochs=args.max_classifier_epochs)
    check_output_dir(args.checkpoint, option="checkpoint", writes=("results.json",), inputs=data_files(data))
    selector, selection_data = None, None
    if policy.needs_selection_model and any(v is None for v in plan.values()):
        selector, selection_data = ValidationEpochs.selection_model(aligner, data, seed, progress=not args.no_progress)
    records = []
    for shots in args.shots:
        if plan[shots] is not None:
            print(f"resume: {args.setting}, {shots} shots, seed {seed} already in {results_path}; skipped")
            records.append(plan[shots])
            continue
        result = evaluate(aligner, data, setting=args.setting, shots=shots, image=image, side=side,
                          policy=policy, seed=seed, dataset_name=run.data.dataset, recipe=recipe,
                          selection_aligner=selector, selection_data=selection_data,
                          max_epochs=args.max_classifier_epochs)
        record = evaluation_record("eval", result, aligner, data, key(shots), seconds=result["seconds"],
                                   details={"checkpoint": str(args.checkpoint)})
        saved_or_rescued(results_path.parent, "results",
                         lambda folder: write_record(folder / "results.json", record, replace=args.force),
                         "the record of this evaluation")
        records.append(record)
    print_results(records, results_path)
    return 0

"""``mmalign sweep SWEEP.toml``: a grid or random search of benchmark runs, locally or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..hooks import hookimpl


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run a grid / random search of benchmark runs from SWEEP.toml, locally or on Ray")
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



def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweeps import InProcess, LocalPool, RayTasks, check_sweep_output, free_workers, read_sweep, run_sweep

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
    check_sweep_output(args.out)  # before a pool or Ray starts
    workers = args.workers or free_workers()
    threads = args.threads if args.threads is not None else max(1, free_workers() // workers)
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

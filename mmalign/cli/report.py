"""``mmalign report RUN_DIR ...``: one HTML page with figures from run folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..hooks import hookimpl
from ..threads import limit_threads


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("report", help="turn run folders into one HTML page with figures (needs mmalign[report])")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="a checkpoint (mmalign train), or a folder with results.json (benchmark, eval, cub-text)")
    p.add_argument("--out", default="report", help="folder for index.html and the PNGs (default report/)")
    p.add_argument("--data-dir", help="data root for the latent map (default: the one the checkpoint recorded)")
    p.add_argument("--max-points", type=int, default=1500, metavar="N",
                   help="most test images in the latent map (default 1500; t-SNE time grows with N)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and t-SNE")
    p.set_defaults(func=cmd_report)



def cmd_report(args: argparse.Namespace) -> int:
    from ..report import make_report

    limit_threads(args.threads)
    if args.max_points < 10:
        raise ConfigError(f"--max-points must be at least 10, got {args.max_points}")
    page = make_report([Path(r) for r in args.runs], Path(args.out), data_dir=args.data_dir,
                       max_points=args.max_points, log=lambda line: print(line, file=sys.stderr))
    print(f"report: {page}")
    return 0

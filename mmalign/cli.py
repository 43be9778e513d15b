"""The ``mmalign`` command line.

Every :class:`~mmalign.errors.MmalignError` becomes one line on stderr and exit code 2; the
traceback only with ``--debug`` (or ``MMALIGN_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from typing import Callable, Sequence

from .errors import MmalignError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its one-line message."""


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import get_catalog

    catalog = get_catalog()
    rows = [
        {"name": p.name, "version": p.version, "builtin": p.builtin, "hooks": p.hooks, "modalities": p.modalities,
         "losses": p.losses}
        for p in catalog.plugins.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        origin = "built-in" if r["builtin"] else "entry point"
        print(f"{r['name']} {r['version']} ({origin})")
        print(f"  hooks: {', '.join(r['hooks']) or '-'}")
        print(f"  modalities: {', '.join(r['modalities']) or '-'}")
        if r["losses"]:
            print(f"  loss families: {', '.join(r['losses'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mmalign", description="Aligned VAEs for any number of modalities (CADA-VAE).")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"mmalign {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list loaded plugins, their hooks and modality keys")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    from . import commands

    commands.add_subcommands(sub)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"mmalign: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from .threads import prepare_process

    prepare_process()  # before anything imports torch
    warnings.showwarning = _one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("MMALIGN_DEBUG"))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except MmalignError as exc:
        if debug:
            traceback.print_exc()
        print(f"mmalign: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mmalign: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

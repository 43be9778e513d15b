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
from typing import NoReturn, Sequence

from .errors import MmalignError
from .failures import EXIT_FAILURE, PLUGIN_COMMANDS, command_exit_code, failure_line, quiet_broken_pipe

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr plus a pointer to ``--help`` (exit code 2), not the
    whole usage block; sub-command parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


#: Library phrases (argument names) -> what a CLI user types instead. A test checks that every
#: left-hand side still occurs in the library, so the table cannot silently go stale.
CLI_NAMES: dict[str, str] = {
    "the data_dir argument": "--data-dir",
    "pass data_dir": "pass --data-dir",
    "Pass skip_card_check=True (CLI: --skip-card-check)": "Pass --skip-card-check",
    "policy='val' (select on validation classes) or policy='manual' with epochs=N":
        "--policy val (select on validation classes) or --classifier-epochs N",
    "use policy='fixed' or 'manual'": "use --policy fixed or --classifier-epochs N",
    "policy='manual' needs epochs=N": "--policy manual needs --classifier-epochs N",
    "max_epochs must be": "--max-classifier-epochs must be",
}


def cli_message(message: str) -> str:
    """``message`` with the library's argument names replaced by the CLI's flags."""
    for library, cli in CLI_NAMES.items():
        message = message.replace(library, cli)
    return message


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every plugin; a key registered twice is marked, not fatal, so this can diagnose it."""
    from .plugins import get_catalog

    catalog = get_catalog(refresh=True, strict=False)
    rows = [
        {"name": p.name, "version": p.version, "builtin": p.builtin, "distribution": p.distribution,
         "hooks": p.hooks, "modalities": p.modalities, "losses": p.losses, "datasets": p.datasets,
         "conflicts": p.conflicts}
        for p in catalog.plugins.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        origin = "built-in" if r["builtin"] else f"entry point, distribution {r['distribution']}"
        print(f"{r['name']} {r['version']} ({origin})")
        print(f"  hooks: {', '.join(r['hooks']) or '-'}")
        print(f"  modalities: {', '.join(r['modalities']) or '-'}")
        if r["losses"]:
            print(f"  loss families: {', '.join(r['losses'])}")
        if r["datasets"]:
            print(f"  datasets: {', '.join(r['datasets'])}")
        for conflict in r["conflicts"]:
            print(f"  CONFLICT: {conflict}")
    if catalog.conflicts:
        print(f"{len(catalog.conflicts)} conflict(s); mmalign refuses to train or load until they are resolved",
              file=sys.stderr)
    return 0


def add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Sub-commands from plugins' ``register_commands`` hooks; a taken name is skipped with a warning.
    Plugins that fail to load are reported when a command needs them, not here."""
    import warnings

    from .errors import PluginWarning
    from .plugins import get_catalog

    try:
        catalog = get_catalog(strict=False)
    except MmalignError:
        return

    class Guarded:
        """The sub-parser action, refusing names that are taken (argparse would raise)."""

        def __init__(self, info) -> None:
            self.info = info

        def add_parser(self, name: str, **kwargs):
            if name in sub.choices:
                warnings.warn(f"{self.info.describe()}: sub-command {name!r} already exists; skipped",
                              PluginWarning, stacklevel=2)
                return _Parser(prog=f"mmalign {name}", add_help=False)  # detached: never reached
            PLUGIN_COMMANDS[name] = self.info.describe()  # named in its errors (mmalign.failures)
            return sub.add_parser(name, **kwargs)

        def __getattr__(self, attr: str):
            return getattr(sub, attr)

    catalog.call_each("register_commands", subparsers=Guarded)


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
    add_plugin_commands(sub)
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
    try:
        parser = build_parser()
    except MmalignError as exc:
        print(f"mmalign: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("MMALIGN_DEBUG"))
    try:
        return command_exit_code(args, PLUGIN_COMMANDS.get(args.command))
    except MmalignError as exc:
        if debug:
            traceback.print_exc()
        print(f"mmalign: error: {cli_message(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mmalign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mmalign schema results | head`: the reader left; nothing more to say
        return quiet_broken_pipe()
    except Exception as exc:  # a bug or a third party's error: one line naming what failed
        if debug:
            traceback.print_exc()
        print(f"mmalign: error: {failure_line(args, exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

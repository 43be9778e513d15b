"""The ``mmalign`` command line.

Every sub-command, built-in or a plugin's, is added through the ``register_commands`` hook: the
built-in ones are the modules of this package (one module per command), loaded as built-in
plugins exactly like a third party's. Every `MmalignError` becomes one line
on stderr and exit code 2; the traceback only with ``--debug`` (or ``MMALIGN_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import NoReturn, Sequence

from ..errors import MmalignError
from .failures import EXIT_FAILURE, PLUGIN_COMMANDS, command_exit_code, failure_line, quiet_broken_pipe

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr plus a pointer to ``--help`` (exit code 2), not the
    whole usage block; long flags are never abbreviated (``--seed`` is not ``--seeds``).
    Sub-command parsers inherit this class."""

    def __init__(self, *args, help_hint: str | None = None, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self.help_hint = help_hint

    def error(self, message: str) -> NoReturn:
        hint = self.help_hint or f"see '{self.prog} --help'"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} ({hint})\n")


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
    "epochs=N fixes the classifier's epochs; it cannot be combined with policy val/test":
        "--classifier-epochs fixes the epochs; it cannot be combined with --policy val/test",
    "precision 'bf16' and compile need engine 'auto'": "--precision bf16 needs --engine auto",
}


def cli_message(message: str) -> str:
    """``message`` with the library's argument names replaced by the CLI's flags."""
    for library, cli in CLI_NAMES.items():
        message = message.replace(library, cli)
    return message


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Every ``register_commands`` hook, built-in and plugins', adds its sub-commands; a taken name
    is skipped with a warning naming the plugin. Plugins that fail to load are reported when a
    command needs them, not here."""
    from ..errors import PluginWarning
    from ..plugins import get_catalog

    try:
        catalog = get_catalog(strict=False)
    except MmalignError:
        from ..plugins import builtin_command_modules

        catalog = None
        for module in builtin_command_modules():  # the built-in commands still work (and say what failed)
            module.register_commands(sub)
    if catalog is None:
        return

    class Guarded:
        """The sub-parser action, refusing names that are taken (argparse would raise)."""

        def __init__(self, info) -> None:
            self.info = info

        def add_parser(self, name: str, **kwargs):
            if name in sub.choices:
                warnings.warn(f"{self.info.describe()}: sub-command {name!r} already exists; skipped",
                              PluginWarning, stacklevel=2)
                return Parser(prog=f"mmalign {name}", add_help=False)  # detached: never reached
            if not self.info.builtin:
                PLUGIN_COMMANDS[name] = self.info.describe()  # named in its errors (mmalign.cli.failures)
            return sub.add_parser(name, **kwargs)

        def __getattr__(self, attr: str):
            return getattr(sub, attr)

    catalog.call_each("register_commands", reverse=False, subparsers=Guarded)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mmalign", description="Aligned VAEs for any number of modalities (CADA-VAE).")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"mmalign {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_commands(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"mmalign: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from ..threads import prepare_process

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


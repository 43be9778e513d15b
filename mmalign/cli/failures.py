"""What the command line does with a failure that is not bad input: one line naming what failed.

`mmalign.cli.main` turns every `MmalignError` into one line and exit
code 2. Anything else that reaches it (a bug, a third-party plugin's or library's own exception)
becomes one line too, naming the command (and the plugin that added it) and the exception, with
exit code `EXIT_FAILURE`; the traceback only with ``--debug`` or ``MMALIGN_DEBUG=1``. A reader
that goes away (``mmalign schema results | head -5``) ends the command quietly
(`quiet_broken_pipe`).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import PluginError

#: Exit code of a command that failed for a reason other than bad input (which exits 2).
EXIT_FAILURE = 1
#: Exit code after the reader of stdout went away: 128 + SIGPIPE, what a shell reports for a
#: program that SIGPIPE ended.
EXIT_BROKEN_PIPE = 141
#: Sub-command name -> the plugin that added it (``PluginInfo.describe()``), filled while the
#: parser is built; named in the errors of the command.
PLUGIN_COMMANDS: dict[str, str] = {}
#: Longest message kept from a foreign exception (its first line).
MAX_MESSAGE = 400


def command_name(args: argparse.Namespace) -> str:
    """``'sweep'``, ``'data download'``: the sub-command (and sub-sub-command) of ``args``."""
    words = [getattr(args, "command", None), getattr(args, "data_command", None)]
    return " ".join(w for w in words if w) or "mmalign"


def _describe(args: argparse.Namespace, plugin: str | None) -> str:
    name = f"sub-command {command_name(args)!r}"
    return f"{name} of {plugin}" if plugin else name


def command_exit_code(args: argparse.Namespace, plugin: str | None = None) -> int:
    """Run the handler ``args.func`` and return its exit code (``None`` means 0); stdout is flushed
    here so a reader that went away is noticed inside the command. A missing handler or one that
    returns something other than an integer is a `PluginError` naming the command and its
    ``plugin``."""
    func = getattr(args, "func", None)
    if not callable(func):
        raise PluginError(f"{_describe(args, plugin)} has no handler: its parser must call "
                          "set_defaults(func=<function taking the parsed arguments>)")
    code = func(args)
    sys.stdout.flush()
    if code is None:
        return 0
    if not isinstance(code, int):
        raise PluginError(f"{_describe(args, plugin)} returned {code!r} ({type(code).__name__}); a handler "
                          "returns an exit code (an int) or None")
    return int(code)


def failure_line(args: argparse.Namespace, exc: BaseException) -> str:
    """``sub-command 'sweep' failed: OverflowError: Range exceeds valid bounds (--debug shows the
    traceback)``: one line, the exception's first line cut to `MAX_MESSAGE` characters."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    plugin = PLUGIN_COMMANDS.get(getattr(args, "command", None) or "")
    return f"{_describe(args, plugin)} failed: {what} (--debug or MMALIGN_DEBUG=1 shows the traceback)"


def quiet_broken_pipe() -> int:
    """After a ``BrokenPipeError`` on stdout: point stdout at ``/dev/null`` so the interpreter's
    final flush cannot fail again, and return `EXIT_BROKEN_PIPE` without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass
    return EXIT_BROKEN_PIPE

"""The library's own error types.

Every failure a user can cause (bad files, bad configs, missing plugins) raises a subclass of
`MmalignError` whose message says what is wrong, where (file, key) and what was expected.
The CLI turns these into one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from pydantic import ValidationError

#: At most this many problems of one pydantic error are shown on the one line.
MAX_PROBLEMS = 3


class MmalignError(Exception):
    """Base class of every error mmalign raises on bad input."""


class ConfigError(MmalignError, ValueError):
    """A configuration or option is invalid (unknown key, wrong type, bad value)."""


class DataError(MmalignError, ValueError):
    """A data file or array is missing, malformed or inconsistent."""


class PluginError(MmalignError):
    """A plugin is missing, broken, or registers a modality key twice."""


class CheckpointError(MmalignError):
    """A checkpoint directory is incomplete, corrupt or incompatible."""


class TrainingError(MmalignError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class OutputError(MmalignError, OSError):
    """An output location cannot be written (not a folder, not writable, no room, one of the inputs)."""


class PluginWarning(UserWarning):
    """Plugin loading found something suspicious but went on (a name in ``MMALIGN_PLUGINS`` that no
    installed plugin has, a plugin module without any hook implementation)."""


def format_validation_error(owner: str, exc: "ValidationError", show_input: bool = False) -> str:
    """The problems of a pydantic error on one line: ``owner: key 'x': message; key 'y': ...``,
    at most `MAX_PROBLEMS` of them, then ``(and N more)``; never the raw dump. The one
    place a pydantic error becomes a message. ``show_input`` adds the rejected value (``got ...``);
    an empty ``owner`` leaves the prefix out."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        got = f", got {err.get('input')!r}" if show_input and "input" in err else ""
        parts.append(f"key {key!r}: {msg}{got}")
    more = f" (and {len(parts) - MAX_PROBLEMS} more)" if len(parts) > MAX_PROBLEMS else ""
    return (f"{owner}: " if owner else "") + "; ".join(parts[:MAX_PROBLEMS]) + more


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The entry of ``known`` closest to ``name`` (case-insensitive), or None when nothing is close."""
    by_upper = {k.upper(): k for k in known}
    found = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=0.6)
    return by_upper[found[0]] if found else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'CUB'?)"`` for the closest known name, or ``""``."""
    close = closest_name(name, known)
    return f" (did you mean {close!r}?)" if close is not None else ""

"""The library's own error types.

Every failure a user can cause (bad files, bad configs, missing plugins) raises a subclass of
:class:`MmalignError` whose message says what is wrong, where (file, key) and what was expected.
The CLI turns these into one line on stderr and exit code 2.
"""

from __future__ import annotations


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

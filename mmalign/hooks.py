"""The ``mmalign`` hook specifications (pluggy).

A plugin is a module (or object) with functions decorated by `hookimpl`. Built-in plugins
(``mmalign_plugins``) and third-party ones (entry-point group ``mmalign``) use the same hooks.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "mmalign"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this: ``@mmalign.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


class MmalignHooks:
    """Hooks a plugin may implement. Every hook is documented (a test checks it)."""

    @hookspec
    def register_modalities(self, register: Callable[[object], None]) -> None:
        """Register modalities by calling ``register(SomeModality())`` once per modality.

        The instance's ``kind`` is its registry key (for example ``"image_features"``); a key
        registered by two plugins is an error naming both. Checkpoints store the key and rebuild
        the modality as ``type(instance)(name=..., **options)``.
        """

    @hookspec
    def register_losses(self, register: Callable[[object], None]) -> None:
        """Register loss-term families by calling ``register(mmalign.terms.LossTerm(...))``.

        A family has a name (the prefix of its term names), a per-sample function, the modality
        tuples it applies to (``each``, ``ordered`` or ``unordered`` pairs) and a default weight
        schedule; the config's ``training.warmup.<family>`` overrides the schedule. It may also
        read the batch's class labels and class tables, take options (validated from the config's
        ``loss_options.<family>`` table), own a trainable module, and be adversarial (see
        `mmalign.terms`).

        Which families a run has: every registered family whose weight schedule is not 0 at every
        epoch. A family whose schedule is identically 0 (default weight 0 and no
        ``training.warmup`` entry, or an entry with ``factor = 0``) is neither built, computed nor
        logged, so an installed family that a recipe does not weigh leaves no trace in its runs
        (no term in the history, no module in the checkpoint). A weighed family is evaluated at
        every step and logged in every epoch, also while its warm-up keeps its weight at 0. A
        family registered by two plugins is an error naming both.
        """

    @hookspec
    def register_datasets(self, register: Callable[..., None]) -> None:
        """Register data sets by calling ``register(name, reader, card=None)`` once per data set.

        ``reader(data_root)`` receives the data root (``--data-dir``, else ``$MMALIGN_DATA_DIR``,
        else the user cache; it may not exist) and returns an `AlignmentData`.
        ``card`` (a `DatasetCard` or a dict of its fields; optional)
        describes the expected class counts and dimensions: loaded data is checked against it and
        ``synthetic_like(name)`` generates data with its layout. Names are matched
        case-insensitively; a shipped card of the same name wins, and a name two plugins register is
        an error naming both.
        """

    @hookspec
    def register_benchmarks(self, register: Callable[[object], None]) -> None:
        """Register benchmarks by calling ``register(SomeBenchmark())`` once per benchmark.

        A benchmark is a `mmalign.benchmarks.Benchmark`: its ``name`` is what
        ``mmalign benchmark NAME`` is called with (any case); it adds its own flags beside the
        shared ones (``add_arguments``), turns the parsed flags and the loaded
        `Recipe` into a request (``request``), checks and runs it
        (``run``, returning `ResultRecord` objects) and prints the
        table (``summarise``). A data set registered through ``register_datasets`` without a
        benchmark of its name gets the latent-classifier protocols. A name two plugins register
        is an error naming both.
        """

    @hookspec
    def register_commands(self, subparsers: Any) -> None:
        """Add ``mmalign`` sub-commands, in the manner of llm's ``register_commands``.

        ``subparsers`` is the ``argparse`` sub-parser action of the ``mmalign`` parser: call
        ``p = subparsers.add_parser("name", help=...)``, add arguments, and
        ``p.set_defaults(func=handler)``; ``handler(args)`` returns the exit code. A handler that
        raises `MmalignError` gets the CLI's one-line error and exit code 2. A name
        that is already taken is skipped with a warning naming the plugin.
        """

"""The ``mmalign`` hook specifications (pluggy).

A plugin is a module (or object) with functions decorated by :data:`hookimpl`. Built-in plugins
(``mmalign_plugins``) and third-party ones (entry-point group ``mmalign``) use the same hooks.
"""

from __future__ import annotations

from typing import Callable

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
        schedule; the config's ``training.warmup.<family>`` overrides the schedule. Every model
        evaluates every registered family (its values are logged even while its weight is 0). A
        family registered by two plugins is an error naming both.
        """

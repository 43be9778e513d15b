"""Plugin loading and the modality catalog.

Built-in plugins (``mmalign_plugins.*``) are registered exactly like third-party ones, which come
from the entry-point group ``mmalign``. ``MMALIGN_PLUGINS`` limits which entry-point plugins load
(comma-separated entry-point names; empty string = none); ``MMALIGN_TRACE_PLUGINS=1`` prints every
hook call. After loading, ``check_pending()`` makes a misspelled hook implementation fail loudly.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hooks
from .errors import PluginError

from .terms import LossTerm

if TYPE_CHECKING:
    from .modality import Modality

ENTRY_POINT_GROUP = "mmalign"
BUILTIN_PLUGINS = (
    "mmalign_plugins.image_features",
    "mmalign_plugins.class_embeddings",
    "mmalign_plugins.text",
    "mmalign_plugins.cada_losses",
    "mmalign_plugins.contrastive",
)
ENV_ALLOW = "MMALIGN_PLUGINS"
ENV_TRACE = "MMALIGN_TRACE_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)


@dataclass
class ModalityEntry:
    kind: str
    factory: type
    plugin: str
    plugin_version: str


class ModalityCatalog:
    """Modality keys -> the class that builds them, with the plugin that registered each; and the
    registered loss-term families (:attr:`losses`, in registration order)."""

    def __init__(self) -> None:
        self.entries: dict[str, ModalityEntry] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.losses: dict[str, LossTerm] = {}
        self.loss_plugins: dict[str, str] = {}

    def add_loss(self, term: LossTerm, plugin: PluginInfo) -> None:
        if not isinstance(term, LossTerm):
            raise PluginError(f"plugin {plugin.name!r} registered {term!r} as a loss; expected a mmalign.terms.LossTerm")
        if term.family in self.losses:
            raise PluginError(f"loss family {term.family!r} is registered twice: by plugin "
                              f"{self.loss_plugins[term.family]!r} and by plugin {plugin.name!r}")
        self.losses[term.family] = term
        self.loss_plugins[term.family] = plugin.name
        plugin.losses.append(term.family)

    def add(self, modality: "Modality", plugin: PluginInfo) -> None:
        kind = getattr(modality, "kind", None)
        if not isinstance(kind, str) or not kind:
            raise PluginError(f"plugin {plugin.name!r} registered {modality!r}, which has no 'kind' key")
        if kind in self.entries:
            other = self.entries[kind].plugin
            raise PluginError(
                f"modality key {kind!r} is registered twice: by plugin {other!r} and by plugin {plugin.name!r}"
            )
        self.entries[kind] = ModalityEntry(kind, type(modality), plugin.name, plugin.version)
        plugin.modalities.append(kind)

    def get(self, kind: str) -> ModalityEntry:
        if kind not in self.entries:
            raise PluginError(
                f"no plugin registers the modality key {kind!r}; registered keys: {sorted(self.entries)}. "
                "Install the plugin that provides it (entry-point group 'mmalign') or check "
                f"{ENV_ALLOW} if it is set"
            )
        return self.entries[kind]

    def create(self, kind: str, name: str | None = None, options: dict[str, Any] | None = None) -> "Modality":
        """A new modality of the registered ``kind`` with the given name and options."""
        return self.get(kind).factory(name, **(options or {}))


def _version_of(module: ModuleType) -> str:
    from . import __version__

    return getattr(module, "__version__", __version__)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    allow = os.environ.get(ENV_ALLOW)
    if allow is not None:
        wanted = {n.strip() for n in allow.split(",") if n.strip()}
        eps = [ep for ep in eps if ep.name in wanted]
    return eps


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """A fresh plugin manager with built-in and entry-point plugins loaded and checked."""
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks.MmalignHooks)
    infos: dict[str, PluginInfo] = {}
    for modname in BUILTIN_PLUGINS:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        infos[modname] = PluginInfo(modname, _version_of(module), builtin=True)
    for ep in _entry_points():
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must name itself
            raise PluginError(f"entry-point plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        version = ep.dist.version if ep.dist is not None else "unknown"
        if pm.is_registered(plugin) or pm.has_plugin(ep.name):
            continue
        pm.register(plugin, name=ep.name)
        infos[ep.name] = PluginInfo(ep.name, version, builtin=False)
    for name, plugin in _ADDED.items():
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:  # the same object twice
            raise PluginError(f"plugin {name!r}: {str(exc).splitlines()[0]}") from None
        infos[name] = PluginInfo(name, getattr(plugin, "__version__", "unknown"), builtin=False)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        known = ", ".join(n for n in dir(hooks.MmalignHooks) if n.startswith("register_"))
        raise PluginError(f"{exc} (known hooks: {known})") from None
    for name, info in infos.items():
        info.hooks = sorted(impl.name for impl in pm.get_hookcallers(pm.get_plugin(name)) or [])
    if os.environ.get(ENV_TRACE):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[mmalign plugins] {msg}"))
        pm.enable_tracing()
    return pm, infos


def build_catalog(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> ModalityCatalog:
    """Call every plugin's ``register_modalities`` hook, attributing each key to its plugin."""
    catalog = ModalityCatalog()
    catalog.plugins = infos
    for impl in reversed(pm.hook.register_modalities.get_hookimpls()):  # registration order
        info = infos[impl.plugin_name]
        impl.function(register=lambda modality, _info=info: catalog.add(modality, _info))
    for impl in pm.hook.register_losses.get_hookimpls():  # plugin registration order: the terms' order
        info = infos[impl.plugin_name]
        impl.function(register=lambda term, _info=info: catalog.add_loss(term, _info))
    return catalog


_CATALOG: ModalityCatalog | None = None
#: plugins added at run time with :func:`add_plugin` (name -> module or object with hook implementations)
_ADDED: dict[str, object] = {}


def add_plugin(plugin: object, name: str) -> ModalityCatalog:
    """Load ``plugin`` (a module or object with ``@mmalign.hookimpl`` functions) into this process's
    catalog beside the built-in and entry-point plugins, as an installed plugin would be loaded:
    for experiments and tests without packaging. Returns the rebuilt catalog."""
    if name in _ADDED:
        raise PluginError(f"a plugin named {name!r} was already added; remove_plugin({name!r}) first")
    _ADDED[name] = plugin
    try:
        return get_catalog(refresh=True)
    except Exception:
        del _ADDED[name]
        get_catalog(refresh=True)
        raise


def remove_plugin(name: str) -> ModalityCatalog:
    """Undo :func:`add_plugin`; returns the rebuilt catalog."""
    _ADDED.pop(name, None)
    return get_catalog(refresh=True)



def get_catalog(refresh: bool = False) -> ModalityCatalog:
    """The process-wide modality catalog (built on first use; ``refresh`` reloads plugins)."""
    global _CATALOG
    if _CATALOG is None or refresh:
        _CATALOG = build_catalog(*build_plugin_manager())
    return _CATALOG

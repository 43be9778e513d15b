"""Plugin loading and the catalog of what plugins register (modalities, loss families, data sets,
benchmarks).

Built-in plugins (``mmalign_plugins.*``) are registered exactly like third-party ones, which come
from the entry-point group ``mmalign``. ``MMALIGN_PLUGINS`` limits which entry-point plugins load
(comma-separated entry-point names; empty string = none; a name no installed plugin has is
warned about); ``MMALIGN_TRACE_PLUGINS=1`` prints every hook call on stderr, naming the plugin.
After loading, ``check_pending()`` makes a misspelled hook implementation fail loudly, and a plugin
module without any hook implementation is warned about.

Hooks are called through pluggy's hook callers (one plugin at a time, so everything registered is
attributed to its plugin and tracing sees every call).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from . import hooks
from .errors import MmalignError, PluginError, PluginWarning
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
    "mmalign_plugins.benchmarks",
    "mmalign_plugins.joint",
    "mmalign_plugins.contrastive_alignment",
    "mmalign_plugins.classification",
    "mmalign_plugins.adversarial_alignment",
    "mmalign_plugins.cub_latents",
)
#: What a registered benchmark must have besides its name (see mmalign.benchmarks.Benchmark).
BENCHMARK_METHODS = ("add_arguments", "request", "run", "summarise")
#: The package whose modules are the built-in commands, each a plugin with a register_commands hook.
COMMANDS_PACKAGE = "mmalign.cli"
ENV_ALLOW = "MMALIGN_PLUGINS"
ENV_TRACE = "MMALIGN_TRACE_PLUGINS"
#: Every hook a plugin may implement (the hookspecs of `mmalign.hooks`).
HOOK_NAMES = tuple(sorted(n for n, _ in inspect.getmembers(hooks.MmalignHooks, inspect.isfunction)))


@dataclass
class PluginInfo:
    """One loaded plugin: its name (entry-point name, or module for built-ins), version, the
    distribution that installed it (None for built-ins) and what it registered."""

    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    distribution: str | None = None
    conflicts: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``plugin 'toy' (distribution mmalign-toy-plugin 0.3.1)``, or the built-in's module."""
        if self.builtin:
            return f"built-in plugin {self.name!r}"
        if self.distribution is None:  # added at run time (add_plugin), no installed distribution
            return f"plugin {self.name!r} (version {self.version})"
        return f"plugin {self.name!r} (distribution {self.distribution} {self.version})"

    def remedy(self) -> str:
        return "" if self.builtin or not self.distribution else f"pip uninstall {self.distribution}"


@dataclass
class ModalityEntry:
    kind: str
    factory: type
    plugin: str
    plugin_version: str


@dataclass
class DatasetEntry:
    """A data set a plugin registered: ``reader(data_root) -> AlignmentData`` and an optional card
    (validated by `mmalign.datasets` when first used)."""

    name: str
    reader: Callable[..., Any]
    card: Any
    plugin: str
    plugin_version: str


class PluginCatalog:
    """What the plugins registered, each entry with its plugin: modality keys -> the class that
    builds them, data-set names -> their reader, benchmark names -> the benchmark, and the loss-term
    families (`losses`, in registration order).

    ``strict`` (default): a key registered twice is a `PluginError` naming both plugins and
    their distributions. Not strict (``mmalign plugins``): the conflict is recorded in
    ``conflicts`` and on both plugins, and the first registration is kept.
    """

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.entries: dict[str, ModalityEntry] = {}
        self.datasets: dict[str, DatasetEntry] = {}
        self.losses: dict[str, LossTerm] = {}
        self.loss_plugins: dict[str, str] = {}
        self.benchmarks: dict[str, Any] = {}
        self.benchmark_plugins: dict[str, str] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.conflicts: list[str] = []
        self.manager: pluggy.PluginManager | None = None

    def _conflict(self, what: str, first: PluginInfo, second: PluginInfo) -> None:
        remedies = [r for r in (second.remedy(), first.remedy()) if r]
        fix = (f"; uninstall one ({' or '.join(remedies)})" if remedies else "") + f", or limit plugins with {ENV_ALLOW}"
        message = f"{what} is registered twice: by {first.describe()} and by {second.describe()}{fix}"
        if self.strict:
            raise PluginError(message)
        self.conflicts.append(message)
        first.conflicts.append(message)
        second.conflicts.append(message)

    def add_loss(self, term: LossTerm, plugin: PluginInfo) -> None:
        if not isinstance(term, LossTerm):
            raise PluginError(f"{plugin.describe()} registered {term!r} as a loss; expected a mmalign.terms.LossTerm")
        plugin.losses.append(term.family)
        if term.family in self.losses:
            self._conflict(f"loss family {term.family!r}", self.plugins[self.loss_plugins[term.family]], plugin)
            return
        self.losses[term.family] = term
        self.loss_plugins[term.family] = plugin.name

    def add_benchmark(self, benchmark: Any, plugin: PluginInfo) -> None:
        name = getattr(benchmark, "name", None)
        if not isinstance(name, str) or not name or not all(callable(getattr(benchmark, m, None)) for m in BENCHMARK_METHODS):
            raise PluginError(f"{plugin.describe()} registered {benchmark!r} as a benchmark; expected a "
                              f"mmalign.benchmarks.Benchmark (a name and {', '.join(BENCHMARK_METHODS)})")
        plugin.benchmarks.append(name)
        taken = {n.lower(): n for n in self.benchmarks}
        if name.lower() in taken:
            first = self.benchmark_plugins[taken[name.lower()]]
            self._conflict(f"benchmark {name!r}", self.plugins[first], plugin)
            return
        self.benchmarks[name] = benchmark
        self.benchmark_plugins[name] = plugin.name

    def add(self, modality: "Modality", plugin: PluginInfo) -> None:
        kind = getattr(modality, "kind", None)
        if not isinstance(kind, str) or not kind:
            raise PluginError(f"{plugin.describe()} registered {modality!r}, which has no 'kind' key")
        plugin.modalities.append(kind)
        if kind in self.entries:
            self._conflict(f"modality key {kind!r}", self.plugins[self.entries[kind].plugin], plugin)
            return
        self.entries[kind] = ModalityEntry(kind, type(modality), plugin.name, plugin.version)

    def add_dataset(self, plugin: PluginInfo, name: str, reader: Callable[..., Any], card: Any = None) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise PluginError(f"{plugin.describe()} registered a data set named {name!r}; a name is a non-empty "
                              "string without '/'")
        if not callable(reader):
            raise PluginError(f"{plugin.describe()}: data set {name!r} needs a callable reader(data_root)")
        plugin.datasets.append(name)
        taken = {n.upper(): n for n in self.datasets}
        if name.upper() in taken:
            first = self.datasets[taken[name.upper()]]
            self._conflict(f"data set {name!r}", self.plugins[first.plugin], plugin)
            return
        self.datasets[name] = DatasetEntry(name, reader, card, plugin.name, plugin.version)

    def get(self, kind: str) -> ModalityEntry:
        if kind not in self.entries:
            raise PluginError(
                f"no plugin registers the modality key {kind!r}; registered keys: {sorted(self.entries)}. "
                "Install the plugin that provides it (entry-point group 'mmalign') or check "
                f"{ENV_ALLOW} if it is set"
            )
        return self.entries[kind]

    def dataset(self, name: str) -> DatasetEntry | None:
        """The plugin data set called ``name`` (case-insensitive), or None."""
        return {n.upper(): e for n, e in self.datasets.items()}.get(name.upper())

    def create(self, kind: str, name: str | None = None, options: dict[str, Any] | None = None) -> "Modality":
        """A new modality of the registered ``kind`` with the given name and options, every option
        (the plugin's defaults too) validated; errors name the plugin."""
        entry = self.get(kind)
        modality = entry.factory(name, **(options or {}))
        info = self.plugins.get(entry.plugin)
        modality.check_options(info.describe() if info is not None else f"plugin {entry.plugin!r}")
        return modality

    def call_each(self, hook: str, reverse: bool = True, **kwargs: Callable[[PluginInfo], Any]) -> None:
        """Call ``hook`` plugin by plugin through pluggy's hook caller, in pluggy's call order
        (last registered first; ``reverse=False``: first registered first); each keyword is a
        factory that builds that argument for the plugin being called."""
        if self.manager is None:
            return
        call_per_plugin(self.manager, self.plugins, hook, kwargs, reverse)


def call_per_plugin(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], hook: str,
                    arguments: dict[str, Callable[[PluginInfo], Any]], reverse: bool = True) -> None:
    """Call ``hook`` of one plugin at a time through pluggy's hook executor (the one its tracing and
    call monitoring wrap), so the arguments can attribute what the plugin registers and
    ``MMALIGN_TRACE_PLUGINS`` traces each call. An exception inside a plugin's hook becomes a
    `PluginError` naming the plugin."""
    tracing = bool(os.environ.get(ENV_TRACE))
    impls = getattr(pm.hook, hook).get_hookimpls()  # registration order
    for impl in (reversed(impls) if reverse else impls):
        info = infos[impl.plugin_name]
        if tracing:
            sys.stderr.write(f"[mmalign plugins] {hook}: calling {info.describe()}\n")
        try:
            # pm.subset_hook_caller would do the same but needs hashable plugin objects (it builds a
            # set), and add_plugin accepts any object with hook implementations
            pm._hookexec(hook, [impl], {name: make(info) for name, make in arguments.items()}, False)
        except PluginError:
            raise
        except MmalignError as exc:  # e.g. a modality whose option defaults do not validate: name the plugin
            raise type(exc)(f"{info.describe()}: its {hook} hook failed: {exc}") from exc
        except Exception as exc:
            raise PluginError(f"{info.describe()}: its {hook} hook failed: {type(exc).__name__}: {exc}") from exc


def _version_of(module: ModuleType) -> str:
    from . import __version__

    return getattr(module, "__version__", __version__)


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    allow = os.environ.get(ENV_ALLOW)
    if allow is not None:
        wanted = {n.strip() for n in allow.split(",") if n.strip()}
        unknown = sorted(wanted - {ep.name for ep in eps})
        if unknown:
            warnings.warn(
                f"{ENV_ALLOW} names {unknown}, but no installed plugin has that entry-point name; installed: "
                f"{sorted({ep.name for ep in eps})}", PluginWarning, stacklevel=3,
            )
        eps = [ep for ep in eps if ep.name in wanted]
    return eps


def builtin_command_modules() -> list[ModuleType]:
    """The built-in commands: every public module of `COMMANDS_PACKAGE` with a
    ``register_commands`` hook (adding a command is adding a module there)."""
    package = importlib.import_module(COMMANDS_PACKAGE)
    modules = [importlib.import_module(f"{COMMANDS_PACKAGE}.{m.name}") for m in pkgutil.iter_modules(package.__path__)
               if not m.name.startswith("_")]
    return [m for m in modules if hasattr(m, "register_commands")]


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """A fresh plugin manager with built-in and entry-point plugins loaded and checked."""
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks.MmalignHooks)
    infos: dict[str, PluginInfo] = {}
    builtins = [importlib.import_module(name) for name in BUILTIN_PLUGINS] + builtin_command_modules()
    for module in builtins:
        modname = module.__name__
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
        infos[ep.name] = PluginInfo(ep.name, version, builtin=False,
                                    distribution=ep.dist.metadata["Name"] if ep.dist is not None else None)
        if not pm.get_hookcallers(plugin):
            warnings.warn(
                f"{infos[ep.name].describe()}: {ep.value} implements no mmalign hook (mark its functions with "
                f"@mmalign.hookimpl; hooks: {', '.join(HOOK_NAMES)})", PluginWarning, stacklevel=2,
            )
    for name, plugin in _ADDED.items():
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:  # the same object twice
            raise PluginError(f"plugin {name!r}: {str(exc).splitlines()[0]}") from None
        infos[name] = PluginInfo(name, getattr(plugin, "__version__", "unknown"), builtin=False)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc} (known hooks: {', '.join(HOOK_NAMES)})") from None
    for name, info in infos.items():
        info.hooks = sorted(impl.name for impl in pm.get_hookcallers(pm.get_plugin(name)) or [])
    if os.environ.get(ENV_TRACE):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[mmalign plugins] {msg}"))
        pm.enable_tracing()
    return pm, infos


def build_catalog(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], strict: bool = True) -> PluginCatalog:
    """Call every plugin's ``register_modalities``, ``register_losses``, ``register_datasets`` and
    ``register_benchmarks`` hooks, attributing each registration to its plugin (see `PluginCatalog` for ``strict``)."""
    catalog = PluginCatalog(strict=strict)
    catalog.plugins = infos
    catalog.manager = pm
    catalog.call_each("register_modalities", register=lambda info: lambda modality: catalog.add(modality, info))
    catalog.call_each("register_losses", reverse=False,  # registration order: the terms' order
                      register=lambda info: lambda term: catalog.add_loss(term, info))
    catalog.call_each("register_datasets",
                      register=lambda info: lambda name, reader, card=None: catalog.add_dataset(info, name, reader, card))
    catalog.call_each("register_benchmarks", reverse=False,
                      register=lambda info: lambda benchmark: catalog.add_benchmark(benchmark, info))
    return catalog


_CATALOGS: dict[bool, PluginCatalog] = {}
#: plugins added at run time with `add_plugin` (name -> module or object with hook implementations)
_ADDED: dict[str, object] = {}


def add_plugin(plugin: object, name: str) -> PluginCatalog:
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


def remove_plugin(name: str) -> PluginCatalog:
    """Undo `add_plugin`; returns the rebuilt catalog."""
    _ADDED.pop(name, None)
    return get_catalog(refresh=True)



def get_catalog(refresh: bool = False, strict: bool = True) -> PluginCatalog:
    """The process-wide catalog (built on first use; ``refresh`` reloads plugins). ``strict=False``
    records conflicts instead of raising (what ``mmalign plugins`` shows)."""
    if refresh:
        _CATALOGS.clear()
    if strict not in _CATALOGS:
        _CATALOGS[strict] = build_catalog(*build_plugin_manager(), strict=strict)
    return _CATALOGS[strict]

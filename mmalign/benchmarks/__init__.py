"""Benchmarks: objects registered through the ``register_benchmarks`` hook and run by
``mmalign benchmark NAME`` (`.base`). Built in: the latent-classifier protocols on the xlsa17
data sets, a folder or a plugin's data set (`.classification`), and the cub-text retrieval
benchmark (`.retrieval`); the flags they share are in `.flags`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PluginError, did_you_mean
from .base import Benchmark

if TYPE_CHECKING:
    from ..plugins import PluginCatalog

__all__ = ["Benchmark", "benchmark_names", "find_benchmark"]


def benchmark_names(catalog: "PluginCatalog") -> list[str]:
    """Every name ``mmalign benchmark`` takes: the registered benchmarks, then the plugins' data
    sets that have no benchmark of their own."""
    taken = {n.lower() for n in catalog.benchmarks}
    return [*catalog.benchmarks, *(n for n in catalog.datasets if n.lower() not in taken)]


def find_benchmark(catalog: "PluginCatalog", name: str) -> Benchmark:
    """The benchmark called ``name`` (any case); a plugin's data set without a benchmark of its own
    gets the latent-classifier protocols."""
    found = {n.lower(): b for n, b in catalog.benchmarks.items()}.get(name.lower())
    if found is not None:
        return found
    entry = catalog.dataset(name)
    if entry is not None:
        from .classification import ClassificationBenchmark

        return ClassificationBenchmark(entry.name)
    known = benchmark_names(catalog)
    raise PluginError(f"unknown benchmark {name!r}{did_you_mean(name, known)}; choose from {', '.join(known)}")


def all_benchmarks(catalog: "PluginCatalog") -> list[Benchmark]:
    """Every benchmark `benchmark_names` names."""
    return [find_benchmark(catalog, n) for n in benchmark_names(catalog)]

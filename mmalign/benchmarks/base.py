"""What a benchmark is: an object registered through the ``register_benchmarks`` hook.

``mmalign benchmark NAME`` looks ``NAME`` up in the plugin catalog, lets the benchmark add its own
flags beside the shared ones (`add_run_flags`), loads the recipe
once, and then calls, in order, `Benchmark.request` (validate the flags into a request; no
work), `Benchmark.run` (check everything every run needs, then run them, appending records)
and `Benchmark.summarise` (print the table). The command holds no branch on a benchmark's
name: the xlsa17 classification protocols, the cub-text retrieval benchmark and a plugin's own
benchmark all go this way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

from ..errors import ConfigError
from ..recipes import DEFAULT_RECIPE, Recipe
from ..records.schema import ResultRecord


class Benchmark:
    """Base class of every benchmark (subclass it and register an instance).

    Attributes:
        name: what ``mmalign benchmark NAME`` is called with (matched case-insensitively).
        summary: one line for ``mmalign benchmark --help``.
        not_taken: flags other benchmarks take and this one refuses, with why (the message a user
            sees instead of argparse's "unrecognized arguments").
    """

    name: str = ""
    summary: str = ""
    #: what ``--epochs`` defaults to, for ``--help``
    default_epochs: str = "the recipe's"
    #: the recipe run when ``--recipe`` is not given
    default_recipe: str = DEFAULT_RECIPE
    not_taken: ClassVar[Mapping[str, str]] = {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this benchmark's own flags (the shared ones are already there)."""

    def request(self, args: argparse.Namespace, recipe: Recipe) -> Any:
        """Validate the parsed flags into a request object (nothing runs, nothing is written)."""
        raise NotImplementedError

    def run(self, request: Any, log: Callable[[str], None]) -> list[ResultRecord]:
        """Check what every requested run needs, run them, and return the records (resumed ones too)."""
        raise NotImplementedError

    def results_path(self, request: Any) -> Path:
        """Where `run` appends its records (named by the interrupt message)."""
        return Path(request.out) / "results.json"

    def summarise(self, records: Sequence[ResultRecord], request: Any, echo: Callable[[str], None] = print) -> None:
        """Print the table of ``records`` (default: the one results table, then where it wrote)."""
        from ..records.tables import print_results

        print_results(records, self.results_path(request), echo=echo)


def check_not_taken(benchmark: Benchmark, unknown: Sequence[str], others: Sequence[Benchmark]) -> None:
    """Explain flags the benchmark's parser did not recognise: refused with the benchmark's reason,
    or taken by other benchmarks only. Nothing is raised for flags no benchmark knows (argparse
    reports them)."""
    flags = [u.split("=", 1)[0] for u in unknown if u.startswith("--")]
    refused = [f for f in flags if f in benchmark.not_taken]
    if refused:
        raise ConfigError(f"benchmark {benchmark.name} does not take {', '.join(refused)}: "
                          f"{benchmark.not_taken[refused[0]]}")
    for flag in flags:
        takers = [b.name for b in others if b is not benchmark and flag in _flags_of(b)]
        if takers:
            shown = [f for f in flags if any(f in _flags_of(b) for b in others if b.name in takers)]
            where = " or ".join(f"'mmalign benchmark {t}'" for t in takers[:3])
            raise ConfigError(f"{', '.join(shown)} apply to {where} only")


def _flags_of(benchmark: Benchmark) -> set[str]:
    parser = argparse.ArgumentParser(add_help=False)
    benchmark.add_arguments(parser)
    return {s for action in parser._actions for s in action.option_strings}

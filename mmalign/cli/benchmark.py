"""``mmalign benchmark NAME [flags]``: run a registered benchmark (see `mmalign.benchmarks`).

The command knows no benchmark by name: it looks ``NAME`` up in the plugin catalog, builds a
parser from the shared flags and the benchmark's own, loads the recipe once, and hands the
benchmark its request.
"""

from __future__ import annotations

import argparse
import sys

from ..hooks import hookimpl
from .common import apply_threads_flags


def benchmark_name(value: str) -> str:
    """argparse type of ``benchmark NAME``: any case; a typo suggests the closest name."""
    from ..benchmarks import benchmark_names
    from ..errors import MmalignError, did_you_mean
    from ..plugins import get_catalog

    try:
        known = {n.lower(): n for n in benchmark_names(get_catalog(strict=False))}
    except MmalignError:
        known = {}
    if value.lower() in known:
        return known[value.lower()]
    raise argparse.ArgumentTypeError(
        f"unknown data set {value!r}{did_you_mean(value, known.values())}; choose from {', '.join(known.values())}"
    )


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark", help="run a benchmark: reproduce CADA-VAE on a data set and compare with the paper, or cub-text",
        description="Runs append to OUT/results.json (default runs/benchmark/results.json). "
                    "'mmalign benchmark NAME --help' shows the flags of one benchmark; 'mmalign plugins' lists them all.",
    )
    p.add_argument("name", type=benchmark_name, metavar="NAME",
                   help="a data set (cub, sun, awa1, awa2, apy, flo, any case), 'custom' with --data-dir D/NAME, "
                        "'cub-text' (real CUB class attributes, sentence embeddings and Wikipedia text; cross-modal "
                        "retrieval, no download), or a benchmark or data set a plugin registers")
    p.add_argument("flags", nargs=argparse.REMAINDER, help="the benchmark's flags (see 'mmalign benchmark NAME --help')")
    p.set_defaults(func=cmd_benchmark)


def benchmark_parser(benchmark) -> argparse.ArgumentParser:
    """The parser of one benchmark: the shared run flags, then the benchmark's own."""
    from ..benchmarks.flags import add_run_flags
    from . import Parser

    prog = f"mmalign benchmark {benchmark.name}"
    parser = Parser(prog=prog, description=benchmark.summary,
                    help_hint=f"see 'mmalign benchmark --help' and '{prog} --help'")
    add_run_flags(parser, default_epochs=benchmark.default_epochs, default_recipe=benchmark.default_recipe)
    benchmark.add_arguments(parser)
    return parser


def cmd_benchmark(args: argparse.Namespace) -> int:
    from ..benchmarks import all_benchmarks, find_benchmark
    from ..benchmarks.base import check_not_taken
    from ..plugins import get_catalog
    from ..recipes import load_recipe

    catalog = get_catalog()
    benchmark = find_benchmark(catalog, args.name)
    parser = benchmark_parser(benchmark)
    flags, unknown = parser.parse_known_args(args.flags)
    if unknown:
        check_not_taken(benchmark, unknown, all_benchmarks(catalog))
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    recipe = load_recipe(flags.recipe or benchmark.default_recipe)  # the one load for the whole command
    apply_threads_flags(flags)
    request = benchmark.request(flags, recipe)
    from tqdm.auto import tqdm

    try:  # log lines go through the progress bars' writer, so they never land inside a bar
        records = benchmark.run(request, log=lambda line: tqdm.write(line, file=sys.stdout))
    except KeyboardInterrupt:
        print(f"mmalign: interrupted; the finished runs are in {benchmark.results_path(request)}, and the same "
              "command with --resume skips them", file=sys.stderr)
        return 130
    benchmark.summarise(records, request)
    return 0

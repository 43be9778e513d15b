"""``mmalign benchmark cub-text``: zero-shot cross-modal retrieval among the real CUB classes
(class attributes, sentence embeddings, Wikipedia text; shipped, no download), as a benchmark
object. The work is `mmalign.retrieval.cub_text.run_cub_text`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..outputs import check_output_dir
from ..recipes import Recipe
from ..records.schema import ResultRecord
from .base import Benchmark
from .flags import check_run_flags

#: ``--text-vectors`` -> ``run_cub_text(recompute=...)``
TEXT_VECTORS = {"auto": "auto", "shipped": "never", "recompute": "always"}
CUB_TEXT_MODALITIES = ("att", "sent", "wiki", "w2v")
_NO_CLASSIFIER = "retrieval trains no classifier"
_SHIPPED = "its data ships with mmalign"


@dataclass
class RetrievalRequest:
    """What one cub-text run does (the keyword arguments of ``run_cub_text``) and where it writes."""

    out: Path
    recipe: Recipe
    seeds: range
    options: dict[str, Any] = field(default_factory=dict)


class CubTextBenchmark(Benchmark):
    name = "cub-text"
    default_epochs = "the recipe's [retrieval] epochs (50 without one), its warm-ups scaled to fit"
    summary = ("real CUB class attributes, sentence embeddings and Wikipedia text: cross-modal retrieval among "
               "unseen classes, no download")
    not_taken = {
        "--synthetic": "it runs on the real CUB class data shipped with mmalign",
        "--data-dir": _SHIPPED,
        "--skip-card-check": _SHIPPED,
        "--setting": "it reports retrieval among the unseen classes (zsl) and among all classes (gzsl)",
        "--shots": "retrieval moves no unseen samples into training",
        "--side-info": "it chooses among att, sent and wiki with --modalities",
        "--policy": _NO_CLASSIFIER,
        "--classifier-epochs": _NO_CLASSIFIER,
        "--max-classifier-epochs": _NO_CLASSIFIER,
        "--stack-seeds": "it trains one Aligner per seed and alignment",
        "--no-stack-seeds": "it trains one Aligner per seed and alignment",
        "--save-models": "it trains many small aligners and keeps none",
        "--log": "tracking covers 'mmalign train' and the xlsa17 benchmarks; cub-text trains many small aligners",
        "--tracking-uri": "cub-text trains many small aligners and does not track them",
    }

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--modalities", nargs="+", choices=CUB_TEXT_MODALITIES, metavar="M",
                       help="modalities to align, at least two of att, sent, wiki, w2v (default: att sent wiki)")
        p.add_argument("--baselines", nargs="*", choices=("ridge", "cca"), metavar="B",
                       help="linear baselines beside the aligner: ridge, cca (default: both; none when given no value)")
        p.add_argument("--text-vectors", choices=tuple(TEXT_VECTORS),
                       help="Wikipedia sentence vectors: re-encode when the MiniLM model is installed (auto), the "
                            "shipped ones, or always re-encode (default auto)")

    def request(self, args: argparse.Namespace, recipe: Recipe) -> RetrievalRequest:
        check_run_flags(args)
        check_output_dir(args.out, writes=("results.json", "table.md"))
        given = {"epochs": args.epochs, "modalities": args.modalities, "baselines": args.baselines}
        options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
        overrides: dict[str, Any] = {"training": {"engine": args.engine, "precision": args.precision}}
        if args.reparameterization is not None:
            overrides["reparameterization"] = args.reparameterization
        options.update(device=_device(args.device), progress=not args.no_progress, resume=args.resume,
                       force=args.force, aligner_overrides=overrides,
                       recompute=TEXT_VECTORS[args.text_vectors or "auto"])
        return RetrievalRequest(Path(args.out), recipe, range(args.first_seed, args.first_seed + args.seeds), options)

    def run(self, request: RetrievalRequest, log: Callable[[str], None]) -> list[ResultRecord]:
        from ..retrieval.cub_text import run_cub_text

        return run_cub_text(seeds=request.seeds, out=request.out, recipe=request.recipe, log=log, **request.options)

    def summarise(self, records: Sequence[ResultRecord], request: RetrievalRequest,
                  echo: Callable[[str], None] = print) -> None:
        from ..records.tables import print_results, retrieval_table

        print_results(records, self.results_path(request), echo=echo, table=retrieval_table,
                      also=[f"table: {request.out / 'table.md'} (Markdown, both settings)"])


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

"""Run the CUB text retrieval benchmark (see mmalign/retrieval/cub_text.py) from a checkout.

    python benchmarks/cub_text.py --seeds 3 --out runs/cub-text [--recipe NAME] [--threads 1]

Writes OUT/results.json and OUT/table.md; the numbers in benchmarks/CUB_TEXT.md come from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (default 0)")
    parser.add_argument("--epochs", type=int, help="default: the recipe's [retrieval] epochs (50 without one)")
    parser.add_argument("--modalities", default="att,sent,wiki", help="comma-separated, of att, sent, wiki, w2v")
    parser.add_argument("--recipe", help="default: mmalign.retrieval.cub_text.CUB_TEXT_RECIPE")
    parser.add_argument("--alignments", help="modality sets to fit, e.g. 'att+sent+wiki,att+wiki' (default: every subset)")
    parser.add_argument("--text-mode", choices=("sentences", "class"), default="class")
    parser.add_argument("--sentences", choices=("visual", "all"), default="visual")
    parser.add_argument("--baselines", default="ridge,cca", help="comma-separated; empty for none")
    parser.add_argument("--recompute", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (1 is fastest on a busy 2-core CPU)")
    parser.add_argument("--out", default="runs/cub-text")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    import mmalign  # noqa: F401 - before torch: sets OpenMP's wait policy (mmalign.threads)
    import torch

    from mmalign.retrieval.cub_text import run_cub_text
    from mmalign.records.tables import print_results

    if args.threads:
        torch.set_num_threads(args.threads)
    records = run_cub_text(
        seeds=range(args.first_seed, args.first_seed + args.seeds), epochs=args.epochs, modalities=args.modalities.split(","), out=args.out,
        text_mode=args.text_mode, sentences=args.sentences, baselines=[b for b in args.baselines.split(",") if b],
        device=args.device, recompute=args.recompute, progress=not args.no_progress, recipe=args.recipe,
        alignments=[a.split("+") for a in args.alignments.split(",")] if args.alignments else None,
    )
    print_results(records, Path(args.out) / "results.json")


if __name__ == "__main__":
    main()

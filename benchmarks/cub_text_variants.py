"""Which Wikipedia text representation carries class information? (linear baselines only)

    python benchmarks/cub_text_variants.py [--seeds 3] [--out runs/cub-text-variants.md]

For each representation of the Wikipedia articles (one vector per class), fits ridge and CCA on the
150 seen classes (hyperparameters by CV over seen classes, CV folds drawn per seed) and retrieves
among the 50 unseen classes, in both directions against attributes and sentence embeddings.
Variants: MiniLM mean pooling over all sentences / visual-keyword sentences / ZEST-labelled visual
sentences, MiniLM CLS pooling, and a bag-of-words TF-IDF (no transformer) for reference. The
variants other than the two shipped ones need the MiniLM package (``mmalign[minilm]``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmalign.retrieval import baseline_retrieval, retrieval_metrics  # noqa: E402
from mmalign.retrieval.cub_data import CubText, class_means, load_cub_text  # noqa: E402


def tfidf(docs: list[str], min_df: int = 2) -> np.ndarray:
    """Sublinear TF-IDF over lower-case word tokens in >= ``min_df`` documents, rows L2-normalised."""
    tokens = [re.findall(r"[a-z]+", d.lower()) for d in docs]
    df: dict[str, int] = {}
    for toks in tokens:
        for w in set(toks):
            df[w] = df.get(w, 0) + 1
    vocab = {w: i for i, w in enumerate(sorted(w for w, c in df.items() if c >= min_df))}
    counts = np.zeros((len(docs), len(vocab)))
    for r, toks in enumerate(tokens):
        for w in toks:
            if w in vocab:
                counts[r, vocab[w]] += 1
    idf = np.log((1 + len(docs)) / (1 + np.array([df[w] for w in vocab]))) + 1
    x = np.where(counts > 0, 1 + np.log(np.maximum(counts, 1)), 0) * idf
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def variants(bundle: CubText, with_model: bool) -> dict[str, np.ndarray]:
    texts, labels = bundle.flat_sentences()
    out = {"MiniLM mean, all sentences (shipped)": bundle.minilm["class_all"],
           "MiniLM mean, visual-keyword sentences (shipped)": bundle.minilm["class_visual"]}
    if with_model:
        from mmalign.text import TextEncoder

        mean = TextEncoder(progress=False).encode(texts)
        zest = np.array([v in (1, 0.5) for group in bundle.visual_labels for v in group])
        zest |= (np.bincount(labels[zest], minlength=200) == 0)[labels]  # classes without any keep all
        out["MiniLM mean, ZEST-labelled visual sentences"] = class_means(mean[zest], labels[zest], 200)
        out["MiniLM CLS, all sentences"] = class_means(TextEncoder(pooling="cls", progress=False).encode(texts), labels, 200)
    out["TF-IDF bag of words, whole article (no transformer)"] = tfidf([" ".join(s) for s in bundle.sentences])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from mmalign.text.model import default_model_dir

    bundle = load_cub_text()
    started = time.perf_counter()
    reps = variants(bundle, with_model=default_model_dir() is not None)
    others = {"att": bundle.attributes, "sent": bundle.sentence_embeddings}
    pairs = [(a, b) for o in others for a, b in ((o, "wiki"), ("wiki", o))]
    head = " | ".join(f"{a} → {b}" for a, b in pairs)
    lines = [f"| wiki representation | method | {head} |", "|---|---|" + "---|" * len(pairs)]
    for name, wiki in reps.items():
        arrays = {**others, "wiki": wiki}
        for method in ("ridge", "cca"):
            cells = []
            for a, b in pairs:
                top1 = []
                for seed in range(args.seeds):
                    (sim,), _ = baseline_retrieval(method, arrays[a], arrays[b], bundle.seen,
                                                   [(bundle.unseen, bundle.unseen)], seed=seed)
                    top1.append(retrieval_metrics(sim, bundle.unseen, bundle.unseen)["top1"])
                cells.append(f"{100 * np.mean(top1):.1f} ± {100 * np.std(top1, ddof=1):.1f}")
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    note = (f"\nTop-1 (%) among the 50 unseen classes, mean ± std over {args.seeds} CV seeds; chance 2.0. "
            f"Wall time {time.perf_counter() - started:.0f} s.\n")
    print(table + note)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + note)


if __name__ == "__main__":
    main()

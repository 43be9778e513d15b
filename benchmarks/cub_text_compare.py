"""Compare cub-text runs: MRR per ordered pair of att, sent, wiki for every method in the given
results files, with the checks of issue 23 (M = 3 against the best M = 2 aligner, the aligner
against regularised CCA), among the 50 unseen classes (zsl) and among all 200 (gzsl).

    python benchmarks/cub_text_compare.py runs/i23-m2 runs/i23-m3 runs/i23-m4 [--aligner RECIPE]

Mean ± sample standard deviation (ddof = 1) over seeds, in percent; wall time per fit is the mean
over seeds of the record's ``seconds.vae`` (aligner) or ``seconds.fit`` (baseline, CV included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmalign.records.files import load_records  # noqa: E402
from mmalign.tables import mean_std  # noqa: E402

PAIRS = [("att", "sent"), ("att", "wiki"), ("sent", "att"), ("sent", "wiki"), ("wiki", "att"), ("wiki", "sent")]


def label(r) -> str:
    if r.method != "aligner":
        return r.method
    recipe = r.details.get("recipe") or r.overrides.get("recipe") or "cada_vae"
    return f"aligner M={len(r.modalities)} {'+'.join(r.modalities)} ({recipe})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    records = [r for f in args.folders for r in load_records(f / "results.json")]
    cells: dict = {}
    seconds: dict = {}
    for r in records:
        if (r.query, r.gallery) not in PAIRS:
            continue
        cells.setdefault((r.setting, label(r), r.query, r.gallery), {})[r.seed] = r.metrics["mrr"]
        seconds.setdefault(label(r), {})[(r.seed, tuple(r.modalities), r.query if r.method != "aligner" else "")] = \
            r.seconds.get("vae", r.seconds.get("fit", 0.0))
    methods = sorted({k[1] for k in cells}, key=lambda m: (m.startswith("aligner"), m.count("+"), m))
    out = []
    for setting, title in (("zsl", "among the 50 unseen classes"), ("gzsl", "among all 200 classes")):
        out += [f"### MRR {title} (%, mean ± std over seeds, ddof = 1)", "",
                "| method | seeds | " + " | ".join(f"{a} → {b}" for a, b in PAIRS) + " | mean of 6 | wall s per fit |",
                "|---|---|" + "---|" * (len(PAIRS) + 2)]
        means: dict = {}
        for m in methods:
            row, seeds = [], set()
            for a, b in PAIRS:
                v = cells.get((setting, m, a, b))
                if not v:
                    row.append("")
                    continue
                mu, sd = mean_std(list(v.values()))
                seeds |= set(v)
                means.setdefault(m, {})[(a, b)] = mu
                row.append(f"{mu:.1f} ± {sd:.1f}")
            per_seed = {s: np.mean([cells[(setting, m, a, b)][s] for a, b in PAIRS if (setting, m, a, b) in cells])
                        for s in seeds}
            avg = mean_std(list(per_seed.values())) if len(means.get(m, {})) == len(PAIRS) else None
            fits = list(seconds[m].values())
            out.append(f"| {m} | {len(seeds)} | " + " | ".join(row) + f" | {f'{avg[0]:.1f} ± {avg[1]:.1f}' if avg else ''}"
                       f" | {np.mean(fits):.0f} |")
        out.append("")
        full = {m: v for m, v in means.items() if len(v) == len(PAIRS)}
        m2 = {m: v for m, v in means.items() if m.startswith("aligner M=2")}
        best2 = {p: max((v[p] for v in m2.values() if p in v), default=None) for p in PAIRS}
        for m, v in full.items():
            if not m.startswith("aligner"):
                continue
            if "cca" in means:
                wins = sum(v[p] > means["cca"][p] for p in PAIRS)
                out.append(f"- {m} vs cca: beats it on {wins}/6 pairs; mean {np.mean(list(v.values())):.2f} vs "
                           f"{np.mean(list(means['cca'].values())):.2f}")
            if m.startswith("aligner M=3") and all(x is not None for x in best2.values()):
                ok = sum(v[p] >= best2[p] for p in PAIRS)
                out.append(f"- {m} vs the best M=2 aligner per pair: at least matches it on {ok}/6 pairs; mean "
                           f"{np.mean(list(v.values())):.2f} vs {np.mean(list(best2.values())):.2f}")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()

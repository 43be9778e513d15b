"""Mean ± std over seeds of the JSON lines ``benchmarks/beyond_search.py`` prints, as a markdown
table: ``python benchmarks/beyond_table.py runs/beyond/test_*.jsonl``."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

COLUMNS = [("zsl0_top1", "ZSL top-1"), ("zsl5_top1", "5-shot ZSL"), ("gzsl0_U", "GZSL U"), ("gzsl0_S", "GZSL S"),
           ("gzsl0_H", "GZSL H"), ("seconds_per_epoch", "s / epoch")]


def main(paths: list[str]) -> None:
    runs = defaultdict(list)
    for path in paths:
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                runs[(r["side_info"], r["recipe"])].append(r)
    print("| side info | recipe | seeds | " + " | ".join(name for _, name in COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    for (side, recipe), rs in sorted(runs.items()):
        cells = []
        for key, _ in COLUMNS:
            values = [r[key] for r in rs if key in r]
            if not values:
                cells.append("–")
                continue
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{mean:.2f} ± {std:.2f}" if key == "seconds_per_epoch" else f"{mean:.1f} ± {std:.1f}")
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"| {side} | {recipe} | {seeds} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

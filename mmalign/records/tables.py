"""The one table every command prints: mean ± std over distinct seeds per configuration, beside
the paper's number with pass/fail against its tolerance, then the wall time per phase."""

from __future__ import annotations

import json

from typing import Sequence

import numpy as np

from ..recipes import load_references
from .schema import KEY_FIELDS, ResultRecord

_GROUP = tuple(k for k in KEY_FIELDS if k != "seed")
_ORDER = ("U", "S", "H", "top1", "top5", "mrr")
HEADER = ("dataset", "setting", "shots", "side info", "method", "seeds", "metric", "mean ± std", "paper", "result")


def run_label(r: ResultRecord) -> str:
    """What was fitted: ``aligner img+att``, ``ridge att->wiki``, ``aligner att+sent+wiki: att->sent``."""
    label = f"{r.method} {'+'.join(r.modalities)}".strip()
    if r.query:
        label = f"{r.method} {r.query}->{r.gallery}" if r.method != "aligner" else f"{label}: {r.query}->{r.gallery}"
    return label


def _hashable(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def group_by_config(records: Sequence[ResultRecord]) -> dict[tuple, list[ResultRecord]]:
    """Records grouped by everything but the seed; one record per distinct seed (the last wins)."""
    groups: dict[tuple, dict[int, ResultRecord]] = {}
    for r in records:
        groups.setdefault(tuple(_hashable(getattr(r, k)) for k in _GROUP), {})[r.seed] = r
    return {k: list(v.values()) for k, v in groups.items()}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _columns(header: Sequence[str], rows: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), "-" * len(line(header))] + [line(row) for row in rows])


#: Retrieval records: where the answer is searched (the record's setting).
AMONG = {"zsl": "unseen classes", "gzsl": "all classes"}
RETRIEVAL_HEADER = ("benchmark", "among", "method", "seeds", "top-1", "top-5", "MRR")


def retrieval_table(records: Sequence[ResultRecord]) -> str:
    """Retrieval records, compact: one row per (benchmark, gallery, fit, query -> gallery) with
    top-1, top-5 and MRR (percent, mean ± std over distinct seeds)."""
    rows = []
    for _, rs in sorted(group_by_config(records).items(), key=lambda kv: tuple(map(str, kv[0]))):
        first = rs[0]
        cells = []
        for metric in ("top1", "top5", "mrr"):
            values = [r.metrics[metric] for r in rs if metric in r.metrics]
            cells.append(f"{mean_std(values)[0]:.1f} ± {mean_std(values)[1]:.1f}" if values else "-")
        rows.append((first.dataset, AMONG.get(first.setting, first.setting), run_label(first), str(len(rs)), *cells))
    rows.sort(key=lambda row: (row[0], row[1] != AMONG["zsl"], row[2]))
    return _columns(RETRIEVAL_HEADER, rows, right={3, 4, 5, 6})


def results_table(records: Sequence[ResultRecord]) -> str:
    """The one table of every command: one row per (configuration, metric), seeds counted as
    distinct seeds, beside the paper's number. (A retrieval benchmark prints the compact
    `retrieval_table` at its end instead.)"""
    refs = load_references()
    rows: list[tuple[str, ...]] = []
    for _, rs in sorted(group_by_config(records).items(), key=lambda kv: tuple(map(str, kv[0]))):
        first = rs[0]
        ref = None if first.command == "cub-text" else refs.find(first.dataset.upper(), first.setting, first.shots,
                                                                 first.side_info)
        for metric in sorted({m for r in rs for m in r.metrics}, key=_ORDER.index):
            values = [r.metrics[metric] for r in rs if metric in r.metrics]
            mean, std = mean_std(values)
            paper = getattr(ref, metric, None) if ref is not None else None
            if first.synthetic:
                verdict = "n/a (synthetic data)"
            elif paper is None:
                verdict = "no reference"
            else:
                verdict = "pass" if abs(mean - paper) <= refs.tolerance else f"FAIL (|diff| > {refs.tolerance:g})"
            rows.append((first.dataset, first.setting, str(first.shots), first.side_info or "-", run_label(first),
                         str(len(values)), metric, f"{mean:.2f} ± {std:.2f}",
                         f"{paper:.1f}" if paper is not None else "-", verdict))
    return _columns(HEADER, rows, right={2, 5, 7, 8})


def phase_times(records: Sequence[ResultRecord]) -> str:
    """Mean wall seconds per phase over the records, per device, engine and precision."""
    groups: dict[tuple, list[ResultRecord]] = {}
    for r in records:
        groups.setdefault((r.command, r.device_name or r.device or "?", r.engine or "-", r.precision or "-"), []).append(r)
    lines = ["wall seconds per phase (mean over records)"]
    for (command, device, engine, precision), rs in groups.items():
        phases = list(dict.fromkeys(k for r in rs for k in r.seconds))
        means = ", ".join(f"{k} {np.mean([r.seconds.get(k, 0.0) for r in rs]):.1f}" for k in phases)
        total = np.mean([sum(r.seconds.values()) for r in rs])
        lines.append(f"  {command} on {device}, engine {engine} {precision}, {len(rs)} record(s): {means}; total {total:.1f}")
    return "\n".join(lines)


def print_results(records: Sequence[ResultRecord], path, echo=print, also: Sequence[str] = (),
                  table=results_table) -> None:
    """What every command prints at the end: the table (``table`` of the records), the time per
    phase, where it wrote (the results file last; ``also`` names further files written, e.g.
    ``table: OUT/table.md``)."""
    if records:
        echo("")
        echo(table(records))
        echo("")
        echo(phase_times(records))
    echo("")
    for line in also:
        echo(line)
    echo(f"results: {path}")

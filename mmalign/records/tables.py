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


def results_table(records: Sequence[ResultRecord]) -> str:
    """The table: one row per (configuration, metric), seeds counted as distinct seeds."""
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
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    right = {2, 5, 7, 8}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(HEADER), "-" * len(line(HEADER))]
    return "\n".join(out + [line(row) for row in rows])


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


def print_results(records: Sequence[ResultRecord], path, echo=print) -> None:
    """What every command prints at the end: the table, the time per phase, where it wrote."""
    if records:
        echo("")
        echo(results_table(records))
        echo("")
        echo(phase_times(records))
    echo(f"\nresults: {path}")

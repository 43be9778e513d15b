"""Aggregate retrieval records over seeds and write ``results.json`` and a Markdown table."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic, write_json_atomic
from ..errors import DataError

METRICS = ("top1", "top5", "mrr")
GROUP = ("setting", "query", "gallery", "method", "alignment")
METHOD_ORDER = {"ridge": 0, "cca": 1, "aligner": 2}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and (population) std over seeds of each metric per (setting, pair, method, alignment)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in GROUP)].append(r)
    rows = []
    for key, rs in groups.items():
        row = dict(zip(GROUP, key))
        row["seeds"] = len(rs)
        for m in METRICS:
            values = np.array([r[m] for r in rs], dtype=np.float64)
            row[m] = float(values.mean())
            row[f"{m}_std"] = float(values.std())
        rows.append(row)
    rows.sort(key=lambda r: (r["setting"] != "zsl", r["query"], r["gallery"], METHOD_ORDER.get(r["method"], 9),
                             r["alignment"].count("+"), r["alignment"]))
    return rows


def _cell(row: dict, metric: str) -> str:
    return f"{100 * row[metric]:.1f} ± {100 * row[metric + '_std']:.1f}"


def markdown_table(summary: list[dict[str, Any]], setting: str) -> str:
    """One Markdown table (percentages, mean ± std over seeds) for ``setting`` (zsl or gzsl)."""
    lines = ["| query → gallery | method | fitted on | top-1 | top-5 | MRR |", "|---|---|---|---|---|---|"]
    for r in summary:
        if r["setting"] != setting:
            continue
        method = r["method"] if r["method"] != "aligner" else f"aligner (M={r['alignment'].count('+') + 1})"
        lines.append(f"| {r['query']} → {r['gallery']} | {method} | {r['alignment']} | "
                     f"{_cell(r, 'top1')} | {_cell(r, 'top5')} | {_cell(r, 'mrr')} |")
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    parts = [
        f"# cub-text retrieval ({len(meta['seeds'])} seeds, {meta['epochs']} epochs, text_mode={meta['text_mode']}, "
        f"sentences={meta['sentences']})",
        "",
        f"Device: {meta['device']}. Wall time (s): "
        + ", ".join(f"{k} {v}" for k, v in meta["seconds"].items()),
        "",
        "## Among the 50 unseen classes (chance: top-1 2.0, top-5 10.0, MRR 9.0)",
        "",
        markdown_table(result["summary"], "zsl"),
        "",
        "## Among all 200 classes, unseen queries (chance: top-1 0.5, top-5 2.5, MRR 2.9)",
        "",
        markdown_table(result["summary"], "gzsl"),
        "",
    ]
    return "\n".join(parts)


def check_previous_report(path: Path) -> None:
    """A ``results.json`` already in the output folder is replaced only when it is an earlier
    retrieval report (an object with ``meta``, ``records`` and ``summary``); anything else (the
    records of ``mmalign benchmark``/``eval``, a corrupt file) is refused, never overwritten."""
    if not path.exists():
        return
    import json

    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: exists and is not a readable results file ({exc}); move it away or choose "
                        "another --out (it is not overwritten)") from None
    if not (isinstance(previous, dict) and {"meta", "records", "summary"} <= set(previous)):
        raise DataError(f"{path}: holds other results than a cub-text retrieval report (expected an object with "
                        "'meta', 'records' and 'summary'); choose another --out (it is not overwritten)")


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``out/results.json`` (meta, every record, summary) and ``out/table.md``, both atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_bytes_atomic(out / "table.md", render(result).encode("utf-8"))

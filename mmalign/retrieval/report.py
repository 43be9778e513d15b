"""The cub-text retrieval results as Markdown tables (``table.md``): mean ± std over seeds per
(setting, query -> gallery, method, modalities), in percent."""

from __future__ import annotations

from typing import Sequence

from ..records.schema import ResultRecord
from ..records.tables import group_by_config, mean_std

METRICS = ("top1", "top5", "mrr")
METHOD_ORDER = {"ridge": 0, "cca": 1, "aligner": 2}


def summarize(records: Sequence[ResultRecord]) -> list[dict]:
    """One row per (setting, query, gallery, method, modalities): mean and std of each metric over
    distinct seeds, and the number of seeds."""
    rows = []
    for rs in group_by_config(records).values():
        r = rs[0]
        row = {"setting": r.setting, "query": r.query, "gallery": r.gallery, "method": r.method,
               "alignment": "+".join(r.modalities), "seeds": len(rs),
               "recipe": r.details.get("recipe") or r.overrides.get("recipe") or ("cada_vae" if r.method == "aligner" else None)}
        for m in METRICS:
            row[m], row[f"{m}_std"] = mean_std([x.metrics[m] for x in rs])
        rows.append(row)
    rows.sort(key=lambda r: (r["setting"] != "zsl", r["query"], r["gallery"], METHOD_ORDER.get(r["method"], 9),
                             r["alignment"].count("+"), r["alignment"]))
    return rows


def _cell(row: dict, metric: str) -> str:
    return f"{row[metric]:.1f} ± {row[metric + '_std']:.1f}"


def markdown_table(summary: list[dict], setting: str) -> str:
    """One Markdown table (percent, mean ± std over seeds) for ``setting`` (zsl or gzsl)."""
    lines = ["| query → gallery | method | fitted on | seeds | top-1 | top-5 | MRR |", "|---|---|---|---|---|---|---|"]
    for r in summary:
        if r["setting"] != setting:
            continue
        method = r["method"] if r["method"] != "aligner" else f"aligner (M={r['alignment'].count('+') + 1}, {r['recipe']})"
        lines.append(f"| {r['query']} → {r['gallery']} | {method} | {r['alignment']} | {r['seeds']} | "
                     f"{_cell(r, 'top1')} | {_cell(r, 'top5')} | {_cell(r, 'mrr')} |")
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render(records: Sequence[ResultRecord]) -> str:
    """``table.md``: both settings, with the chance levels."""
    summary = summarize(records)
    seeds = sorted({r.seed for r in records})
    aligner = next((r for r in records if r.method == "aligner"), None)
    epochs = f", {plural(aligner.epochs_vae, 'epoch')}" if aligner is not None else ""
    return "\n".join([
        f"# cub-text retrieval ({plural(len(seeds), 'seed')}{epochs}; percent, mean ± std over seeds)",
        "",
        "## Among the 50 unseen classes (chance: top-1 2.0, top-5 10.0, MRR 9.0)",
        "",
        markdown_table(summary, "zsl"),
        "",
        "## Among all 200 classes, unseen queries (chance: top-1 0.5, top-5 2.5, MRR 2.9)",
        "",
        markdown_table(summary, "gzsl"),
        "",
    ])

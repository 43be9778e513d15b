"""Several runs side by side: one figure per group of results that can be compared (the same data
set, setting, shots and side information for the classification protocols; the same setting for
cub-text's retrieval), each titled with what it shows. Nothing is averaged across methods,
modalities or retrieval directions; metrics of different tasks never share an axis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..records.schema import ResultRecord
from ..records.tables import group_by_config, mean_std
from .figures import line_style, new_figure
from .runs import Training

CLASSIFICATION_METRICS = {"gzsl": ("U", "S", "H"), "zsl": ("top1",)}
RETRIEVAL_CHANCE = {"zsl": "the 50 unseen classes", "gzsl": "all 200 classes"}


@dataclass
class Group:
    """Records of several runs that answer the same question: `title` says which, `kind` is
    `"classification"` or `"retrieval"`, `by_run` holds each run's records of the group."""

    title: str
    kind: str
    by_run: dict[str, list[ResultRecord]] = field(default_factory=dict)


def comparable_groups(runs: Sequence[tuple[str, Sequence[ResultRecord]]]) -> list[Group]:
    """The groups present in at least two runs, in a stable order."""
    groups: dict[tuple, Group] = {}
    for name, records in runs:
        for r in records:
            if r.command == "cub-text":
                key = ("retrieval", r.dataset, r.setting)
                title = f"cub-text retrieval top-1 among {RETRIEVAL_CHANCE.get(r.setting, r.setting)}"
            else:
                key = ("classification", r.dataset, r.synthetic, r.setting, r.shots, r.side_info)
                synthetic = " (synthetic)" if r.synthetic else ""
                title = f"{r.dataset}{synthetic} {r.setting.upper()}, {r.shots} shots, {r.side_info or 'side information'}"
            group = groups.setdefault(key, Group(title, key[0]))
            group.by_run.setdefault(name, []).append(r)
    return [g for _, g in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))) if len(g.by_run) > 1]


def _label(r: ResultRecord) -> str:
    return f"{r.method} {'+'.join(r.modalities)}".strip()


def classification_figure(group: Group) -> Figure:
    """One bar per (run, method and modalities) for each metric of the setting (U, S, H or top-1),
    mean ± std over that configuration's seeds."""
    setting = next(iter(group.by_run.values()))[0].setting
    metrics = CLASSIFICATION_METRICS.get(setting, ("top1",))
    series = [(f"{run}: {_label(rs[0])}", rs) for run, records in group.by_run.items()
              for rs in group_by_config(records).values()]
    fig = new_figure()
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, (label, rs) in enumerate(series):
        stats = [mean_std([r.metrics[m] for r in rs if m in r.metrics]) if any(m in r.metrics for r in rs)
                 else (np.nan, 0.0) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, [m for m, _ in stats], width, yerr=[s for _, s in stats],
               capsize=3, label=f"{label} ({len(rs)} seed(s))")
    ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, ["top-1" if m == "top1" else m for m in metrics])
    ax.set_xlabel("metric (mean ± std over seeds)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"{group.title}: runs side by side")
    return fig


def retrieval_figure(group: Group) -> Figure:
    """Top-1 per query → gallery direction: one bar per (run, method and modalities), mean ± std
    over seeds."""
    records = [r for rs in group.by_run.values() for r in rs]
    directions = sorted({(r.query, r.gallery) for r in records})
    series: dict[str, dict[tuple, list[float]]] = {}
    for run, rs in group.by_run.items():
        for r in rs:
            series.setdefault(f"{run}: {_label(r)}", {}).setdefault((r.query, r.gallery), []).append(r.metrics["top1"])
    fig = new_figure()
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, (label, by_direction) in enumerate(series.items()):
        stats = [mean_std(by_direction[d]) if d in by_direction else (np.nan, 0.0) for d in directions]
        ax.bar(np.arange(len(directions)) + i * width, [m for m, _ in stats], width, yerr=[s for _, s in stats],
               capsize=2, label=label)
    ax.set_xticks(np.arange(len(directions)) + 0.4 - width / 2, [f"{q}→{g}" for q, g in directions])
    ax.set_xlabel("query → gallery (mean ± std over seeds)")
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    ax.set_title(f"{group.title}: runs side by side")
    return fig


def losses_figure(runs: Sequence[tuple[str, Sequence[Training]]]) -> Figure:
    """The total training loss per epoch of every run's trained configurations."""
    fig = new_figure()
    ax = fig.add_subplot()
    for run, trainings in runs:
        for t in trainings:
            ax.plot([h["epoch"] + 1 for h in t.history], [h["terms"]["loss"] for h in t.history],
                    label=f"{run}: {t.label}", **line_style(len(t.history)))
    ax.set_xlabel("epoch")
    ax.set_ylabel("total loss, epoch mean")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Total training loss per epoch, per run and trained configuration")
    return fig

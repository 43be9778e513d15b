"""The report's figures (matplotlib, no pyplot state: every function returns a ``Figure``).

Every figure has a title, axis labels with units and a legend."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..recipes import load_references
from ..records.schema import ResultRecord
from ..records.tables import group_by_config, mean_std
from .latent_map import LatentMap

WIDE, TALL = (9.0, 4.6), (9.0, 6.0)
DPI = 100
_FAMILIES = ("recon", "kl", "cross", "align")


def new_figure(size=WIDE) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="constrained")


def line_style(points: int) -> dict[str, Any]:
    """Markers on curves of few epochs, so that a 1-epoch run's single point shows."""
    return {"marker": "o", "markersize": 4} if points <= 30 else {}


def loss_curves(history: Sequence[dict[str, Any]], title: str) -> Figure:
    """Every loss term's epoch mean (log scale) and, on a second axis, each loss family's warm-up
    weight, so the epochs before an alignment term is switched on are visible as such."""
    fig = new_figure()
    ax = fig.add_subplot()
    epochs = np.array([h["epoch"] for h in history]) + 1
    terms = list(dict.fromkeys(k for h in history for k in h["terms"]))
    for term in terms:
        values = np.array([h["terms"].get(term, np.nan) for h in history], dtype=float)
        style = {"color": "black", "linewidth": 2.2} if term == "loss" else {"linewidth": 1.2}
        style.update(line_style(len(history)))
        ax.plot(epochs, np.where(values > 0, values, np.nan), label=term, **style)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss term, epoch mean (log scale)")
    weights = list(dict.fromkeys(k for h in history for k in h.get("weights", {})))
    handles, labels = ax.get_legend_handles_labels()
    if weights:
        twin = ax.twinx()
        for family in weights:
            twin.plot(epochs, [h.get("weights", {}).get(family, np.nan) for h in history], linestyle="--",
                      linewidth=1.8, label=f"weight: {family}", **line_style(len(history)))
        twin.set_ylabel("warm-up weight (dimensionless)")
        more_h, more_l = twin.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
        title += " (dashed: warm-up weights)"
    else:
        title += " (no weights recorded)"
    fig.legend(handles, labels, fontsize=7, ncol=2 if len(labels) > 16 else 1, loc="outside right upper")
    ax.set_title(title)
    return fig


def latent_scatter(m: LatentMap, title: str) -> Figure:
    """t-SNE of the latent means: seen and unseen classes in two panels, colour = class,
    marker = modality (images small dots, class side information large outlined markers)."""
    fig = new_figure(TALL)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    cmap = __import__("matplotlib").colormaps["tab20"]
    modalities = list(dict.fromkeys(m.modality.tolist()))
    markers = dict(zip(modalities, ("o", "*", "^", "s", "D", "P")))
    for ax, unseen in zip(axes, (False, True)):
        for mod in modalities:
            sel = (m.modality == mod) & (m.unseen == unseen)
            per_sample = (m.modality == mod).sum() > len(m.class_names)
            ax.scatter(m.xy[sel, 0], m.xy[sel, 1], c=[cmap(int(c) % 20) for c in m.classes[sel]],
                       marker=markers[mod], s=8 if per_sample else 90, alpha=0.6 if per_sample else 1.0,
                       edgecolors="none" if per_sample else "black", linewidths=0.6)
        ax.set_title(f"{'unseen' if unseen else 'seen'} classes ({len(set(m.classes[m.unseen == unseen]))})")
        ax.set_xlabel("t-SNE dimension 1 (arbitrary units)")
    axes[0].set_ylabel("t-SNE dimension 2 (arbitrary units)")
    handles = [Line2D([], [], linestyle="", marker=markers[mod], color="grey", markeredgecolor="black",
                      markersize=7, label=f"modality {mod}") for mod in modalities]
    axes[1].legend(handles=handles, loc="best", fontsize=8, title="colour = class", title_fontsize=8)
    fig.suptitle(title)
    return fig


def per_class_accuracy(record: ResultRecord, title: str) -> Figure:
    """Per-class accuracy, sorted, for the seen (S) and unseen (U) test classes, with the mean."""
    parts = [(k, record.per_class[k]) for k in ("S", "U") if record.per_class.get(k)]
    fig = new_figure()
    axes = np.atleast_1d(fig.subplots(1, len(parts), squeeze=False)[0])
    for ax, (metric, values) in zip(axes, parts):
        order = sorted(values.items(), key=lambda kv: kv[1])
        accuracy = [v for _, v in order]
        ax.bar(np.arange(len(order)), accuracy, width=1.0, color="tab:blue" if metric == "S" else "tab:orange",
               label=f"{metric}: one bar per class")
        ax.axhline(float(np.mean(accuracy)), color="black", linestyle="--", label=f"mean {np.mean(accuracy):.1f}%")
        if len(order) <= 25:
            ax.set_xticks(np.arange(len(order)), [n for n, _ in order], rotation=90, fontsize=7)
        ax.set_xlabel(f"{'seen' if metric == 'S' else 'unseen'} test classes, sorted by accuracy")
        ax.set_ylabel("per-class accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    return fig


def confusion(record: ResultRecord, title: str) -> Figure:
    """Where the test images of the worst classes went (counts), as a heat map."""
    c = record.confusion
    fig = new_figure((9.0, 5.2))
    ax = fig.add_subplot()
    counts = np.array(c.counts, dtype=float)
    image = ax.imshow(counts, cmap="viridis", aspect="auto")
    ax.set_xticks(np.arange(len(c.columns)), c.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(c.rows)), c.rows, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (worst accuracy first)")
    fig.colorbar(image, ax=ax, label="test images (count)")
    ax.plot([], [], linestyle="", marker="s", color="yellow", label="brighter = more images")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title)
    return fig


def against_paper(records: Sequence[ResultRecord], title: str) -> Figure:
    """mmalign's mean ± std over seeds beside the paper's number and its tolerance band, per
    (data set, setting, shots, side information) and metric."""
    refs = load_references()
    groups = group_by_config([r for r in records if r.command != "cub-text"])
    fig = new_figure()
    ax = fig.add_subplot()
    labels, x = [], 0
    drawn_paper = False
    for rs in groups.values():
        first = rs[0]
        ref = refs.find(first.dataset.upper(), first.setting, first.shots, first.side_info or "")
        for metric in [m for m in ("U", "S", "H", "top1") if any(m in r.metrics for r in rs)]:
            mean, std = mean_std([r.metrics[metric] for r in rs if metric in r.metrics])
            ax.bar(x, mean, yerr=std, capsize=4, color="tab:blue", label="mmalign (mean ± std over seeds)" if x == 0 else None)
            paper = getattr(ref, metric, None) if ref is not None else None
            if paper is not None:
                ax.fill_between([x - 0.45, x + 0.45], paper - refs.tolerance, paper + refs.tolerance, color="tab:green",
                                alpha=0.25, label=None if drawn_paper else f"paper ± tolerance ({refs.tolerance:g} points)")
                ax.plot([x - 0.45, x + 0.45], [paper, paper], color="tab:green", linewidth=2,
                        label=None if drawn_paper else "paper (CADA-VAE, CVPR 2019)")
                drawn_paper = True
            synthetic = " (synthetic)" if first.synthetic else ""
            labels.append(f"{first.dataset} {first.setting}\n{first.shots} shots {metric}{synthetic}")
            x += 1
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel("data set, setting, shots, metric")
    ax.set_ylim(0, 100)
    if not drawn_paper:
        ax.plot([], [], color="tab:green", label="no paper number for these runs")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title)
    return fig


def fewshot_curves(records: Sequence[ResultRecord], title: str) -> Figure:
    """H (GZSL) or top-1 (ZSL) against the number of shots, mean ± std over seeds, with the
    paper's AWA2 generalized few-shot points."""
    fig = new_figure()
    ax = fig.add_subplot()
    curves: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        metric = "H" if r.setting == "gzsl" else "top1"
        if r.command != "cub-text" and metric in r.metrics:
            curves[(r.dataset, r.setting, r.side_info, r.synthetic)][r.shots].append(r.metrics[metric])
    for (dataset, setting, side, synthetic), by_shots in sorted(curves.items(), key=str):
        shots = sorted(by_shots)
        stats = [mean_std(by_shots[k]) for k in shots]
        ax.errorbar(shots, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3,
                    label=f"mmalign {dataset} {setting} ({'H' if setting == 'gzsl' else 'top-1'})"
                          f"{' synthetic' if synthetic else ''}")
    paper = sorted((r.shots, r.H) for r in load_references().result
                   if r.dataset == "AWA2" and r.setting == "gzsl" and r.H is not None)
    ax.plot([s for s, _ in paper], [h for _, h in paper], linestyle=":", marker="s", color="tab:green",
            label="paper AWA2 GZSL H (CVPR 2019, Fig. 4)")
    ax.set_xlabel("shots (images per unseen class moved to training)")
    ax.set_ylabel("H or top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    return fig


def retrieval_bars(records: Sequence[ResultRecord], title: str) -> Figure:
    """cub-text: top-1 per query -> gallery direction for ridge, CCA and each aligner, mean ± std
    over seeds, one panel per setting."""
    fig = new_figure(TALL)
    settings = [s for s in ("zsl", "gzsl") if any(r.setting == s for r in records)]
    axes = np.atleast_1d(fig.subplots(len(settings), 1, squeeze=False)[:, 0])
    for ax, setting in zip(axes, settings):
        groups = group_by_config([r for r in records if r.setting == setting])
        directions = sorted({(r[0].query, r[0].gallery) for r in groups.values()})
        methods = sorted({(r[0].method, "+".join(r[0].modalities) if r[0].method == "aligner" else "")
                          for r in groups.values()}, key=lambda m: ({"ridge": 0, "cca": 1}.get(m[0], 2), len(m[1]), m[1]))
        width = 0.8 / max(1, len(methods))
        for j, (method, mods) in enumerate(methods):
            means, stds = [], []
            for q, g in directions:
                rs = [rs for rs in groups.values() if (rs[0].query, rs[0].gallery) == (q, g) and rs[0].method == method
                      and (method != "aligner" or "+".join(rs[0].modalities) == mods)]
                m, s = mean_std([r.metrics["top1"] for r in rs[0]]) if rs else (np.nan, 0.0)
                means.append(m)
                stds.append(s)
            ax.bar(np.arange(len(directions)) + j * width, means, width, yerr=stds, capsize=2,
                   label=f"aligner {mods}" if method == "aligner" else method)
        ax.set_xticks(np.arange(len(directions)) + 0.4 - width / 2, [f"{q}→{g}" for q, g in directions])
        ax.set_ylabel("top-1 (%)")
        ax.set_xlabel("query → gallery")
        chance = 2.0 if setting == "zsl" else 0.5
        ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({chance}%)")
        ax.set_title(f"{setting}: among {'the 50 unseen' if setting == 'zsl' else 'all 200'} classes")
        ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.suptitle(title)
    return fig

"""Per-class accuracy and the confusion of the worst classes, from one evaluation's predictions
(the report's per-class figures are drawn from these, stored in the result record)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .protocol import ProtocolTask

#: How many of the worst classes the confusion keeps, and how many predicted classes per row.
WORST = 8


def class_breakdown(task: ProtocolTask, predictions: dict[str, np.ndarray], class_names: Sequence[str],
                    worst: int = WORST) -> dict[str, Any]:
    """``{"per_class": {"S": {name: percent}, "U": {...}}, "confusion": {rows, columns, counts}}``.

    ``S`` covers the seen test images (GZSL only), ``U`` the unseen ones. The confusion's rows are
    the ``worst`` classes with the lowest accuracy; its columns the classes they were most often
    predicted as (the row's own class included), and a last ``other`` column for the rest."""
    names = [str(class_names[int(c)]) for c in task.class_ids]
    parts = {"U": ("test_unseen", task.test_unseen), "S": ("test_seen", task.test_seen)}
    per_class: dict[str, dict[str, float]] = {}
    pairs = []
    for metric, (key, latents) in parts.items():
        if latents is None or key not in predictions:
            continue
        truth = latents.y.cpu().numpy()
        pred = predictions[key]
        pairs.append((truth, pred))
        per_class[metric] = {names[c]: float(100.0 * np.mean(pred[truth == c] == c)) for c in np.unique(truth)}
    if not pairs:
        return {"per_class": per_class}
    truth = np.concatenate([t for t, _ in pairs])
    pred = np.concatenate([p for _, p in pairs])
    accuracy = {c: float(np.mean(pred[truth == c] == c)) for c in np.unique(truth)}
    rows = sorted(accuracy, key=lambda c: (accuracy[c], c))[:worst]
    matrix = np.zeros((len(rows), len(names)), dtype=np.int64)
    for i, c in enumerate(rows):
        np.add.at(matrix[i], pred[truth == c], 1)
    totals = matrix.sum(0)
    columns = list(dict.fromkeys([*rows, *[int(c) for c in np.argsort(-totals, kind="stable") if totals[c] > 0]]))
    columns = columns[: max(worst + 4, len(rows))]
    counts = [[int(matrix[i, c]) for c in columns] + [int(matrix[i].sum() - matrix[i, columns].sum())]
              for i in range(len(rows))]
    confusion = {"rows": [names[c] for c in rows], "columns": [names[c] for c in columns] + ["other"], "counts": counts}
    return {"per_class": per_class, "confusion": confusion}

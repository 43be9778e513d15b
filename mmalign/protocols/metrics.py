"""Per-class accuracy and the harmonic mean, the GZSL/ZSL metrics of Xian et al. (and CADA-VAE).

Everything stays on the device of the inputs and returns tensors, so a caller can compute metrics
after every classifier epoch without a host sync; convert to floats once at the end.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_long(values, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(device=device or values.device, dtype=torch.long)
    return torch.as_tensor(np.asarray(values), dtype=torch.long, device=device)


def per_class_accuracy(predictions, targets, classes, num_classes: int | None = None) -> torch.Tensor:
    """Accuracy of each class in ``classes``, averaged over those classes (a 0-d float tensor in [0, 1]).

    ``predictions`` and ``targets`` are 1-D integer labels; ``classes`` lists the classes to average
    over (CADA-VAE: S over the seen classes of the test-seen images, U over the unseen classes of the
    test-unseen images). A class with no sample in ``targets`` is skipped (the reference would give
    0/0); the result is 0 when no class has a sample. ``num_classes`` (default: inferred with one
    host sync) bounds the label values. Runs on the device of ``targets``.
    """
    targets = _as_long(targets)
    device = targets.device
    predictions = _as_long(predictions, device)
    classes = _as_long(classes, device)
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
    if num_classes is None:
        num_classes = int(max(int(targets.max()) if targets.numel() else 0,
                              int(classes.max()) if classes.numel() else 0)) + 1
    hits = torch.zeros(num_classes, device=device).index_add_(0, targets, (predictions == targets).float())
    counts = torch.zeros(num_classes, device=device).index_add_(0, targets, torch.ones_like(targets, dtype=torch.float))
    hits, counts = hits[classes], counts[classes]
    present = counts > 0
    accuracy = torch.where(present, hits / counts.clamp(min=1), torch.zeros_like(hits))
    return accuracy.sum() / present.sum().clamp(min=1)


def harmonic_mean(seen, unseen):
    """``H = 2 S U / (S + U)``, 0 when ``S + U = 0``. Floats in, float out; tensors in, tensor out."""
    if isinstance(seen, torch.Tensor) or isinstance(unseen, torch.Tensor):
        seen, unseen = torch.as_tensor(seen), torch.as_tensor(unseen)
        total = seen + unseen
        return torch.where(total > 0, 2 * seen * unseen / torch.where(total > 0, total, torch.ones_like(total)),
                           torch.zeros_like(total))
    total = seen + unseen
    return 2 * seen * unseen / total if total > 0 else 0.0


def percent(value) -> float:
    """A fraction (float or 0-d tensor) as a percentage float."""
    return 100.0 * float(value)

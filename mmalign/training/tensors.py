"""Normalised training data, resident on the device, and the batch gather of a step."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TrainingTensors:
    """Normalised training data on the device.

    ``sample[name]`` is ``(N, d)`` for per-sample modalities, ``by_class[name]`` is ``(C, d)`` for
    per-class ones, ``labels`` is ``(N,)``; ``masks[name]`` optionally ``(N,)`` (1 = present).
    """

    labels: torch.Tensor
    sample: dict[str, torch.Tensor] = field(default_factory=dict)
    by_class: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Rows ``idx`` of every modality (per-class ones through the rows' labels) and their masks.
        ``idx`` may have leading dimensions (``(S, B)`` for S runs): every tensor gets them too."""
        rows = {n: x[idx] for n, x in self.sample.items()}
        classes = self.labels[idx]
        rows.update({n: x[classes] for n, x in self.by_class.items()})
        return rows, {n: m[idx] for n, m in self.masks.items()}

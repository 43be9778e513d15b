"""Normalised training data, resident on the device (or, for per-sample features larger than
memory, read from disk batch by batch: `MappedRows`), and the batch gather of a step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..mapped import MappedFeatures
from ..normalise import Normaliser


class MappedRows:
    """A per-sample modality's training rows left on disk: ``rows[idx]`` reads rows ``idx`` of the
    training split (any shape of positions), zero-fills the missing ones (``present``, default
    all present), normalises them and moves them to ``device``, as the resident path does for the
    whole split at once."""

    def __init__(self, source: MappedFeatures, index: np.ndarray, normaliser: Normaliser, device: torch.device,
                 present: np.ndarray | None = None) -> None:
        self.source, self.index, self.normaliser, self.device = source, np.asarray(index, dtype=np.int64), normaliser, device
        self.present = None if present is None else torch.as_tensor(np.asarray(present, dtype=bool))

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.index.size), self.source.dim

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        pos = idx.detach().cpu()
        rows = torch.from_numpy(self.source.rows(self.index[pos.numpy()]))
        if self.present is not None:
            rows = torch.where(self.present[pos][..., None], rows, torch.zeros_like(rows))
        return self.normaliser(rows).to(self.device)


@dataclass
class TrainingTensors:
    """Normalised training data on the device.

    ``sample[name]`` is ``(N, d)`` for per-sample modalities (a tensor, or `MappedRows` left
    on disk), ``by_class[name]`` is ``(C, d)`` for per-class ones (always resident), ``labels`` is
    ``(N,)``; ``masks[name]`` optionally ``(N,)`` (1 = present).
    """

    labels: torch.Tensor
    sample: dict[str, torch.Tensor | MappedRows] = field(default_factory=dict)
    by_class: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def resident(self) -> bool:
        """Whether every modality is on the device (a step can then run as one CUDA graph)."""
        return not any(isinstance(x, MappedRows) for x in self.sample.values())

    def batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Rows ``idx`` of every modality (per-class ones through the rows' labels) and their masks.
        ``idx`` may have leading dimensions (``(S, B)`` for S runs): every tensor gets them too."""
        rows = {n: x[idx] for n, x in self.sample.items()}
        classes = self.labels[idx]
        rows.update({n: x[classes] for n, x in self.by_class.items()})
        return rows, {n: m[idx] for n, m in self.masks.items()}

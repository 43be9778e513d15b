"""The training split as tensors: each modality's normaliser fitted on the training rows only
(per-class modalities on the training classes), the normalised data moved to the device, rows
left on disk for features larger than memory."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from .data import AlignmentData
from .errors import DataError
from .mapped import MappedFeatures
from .modality import Modality
from .normalise import Normaliser
from .training import TrainingTensors
from .training.tensors import MappedRows


def training_data(modalities: Mapping[str, Modality], data: AlignmentData, split: str,
                  device: torch.device) -> tuple[TrainingTensors, dict[str, Normaliser], dict[str, int], int]:
    """Fit each modality's normaliser on the ``split`` rows (per-class modalities: on its classes)
    and move the normalised data to ``device``. Returns the tensors, the fitted normalisers, each
    modality's input dimension and the number of training classes."""
    idx = data.split(split)
    labels = np.asarray(data.labels)[idx]
    train_classes = np.unique(labels)
    tensors = TrainingTensors(labels=torch.as_tensor(labels, dtype=torch.long, device=device))
    normalisers: dict[str, Normaliser] = {}
    dims: dict[str, int] = {}
    for name, modality in modalities.items():
        prepared = modality.prepare(data)
        normaliser = modality.make_normaliser()
        if isinstance(prepared, MappedFeatures):  # left on disk: a streaming fit, rows read per batch
            tensors.sample[name], present = _mapped_rows(name, prepared, data, modality.source, idx, normaliser, device)
            if present is not None:
                tensors.masks[name] = torch.as_tensor(present).to(device)
            normalisers[name], dims[name] = normaliser, prepared.dim
            continue
        array = torch.as_tensor(prepared)
        if modality.granularity == "sample":
            rows = array[idx]
            if modality.source in data.sample_masks:  # fit on present rows; zero-fill the rest
                present = torch.as_tensor(np.asarray(data.sample_masks[modality.source], dtype=bool)[idx])
                normaliser.fit(rows[present])
                rows = torch.where(present[:, None], rows, torch.zeros_like(rows))
            else:
                normaliser.fit(rows)
            tensors.sample[name] = normaliser(rows).to(device)
            if modality.source in data.sample_masks:
                tensors.masks[name] = present.to(device)
        else:
            normaliser.fit(array[train_classes])
            tensors.by_class[name] = normaliser(array).to(device)
        normalisers[name] = normaliser
        dims[name] = int(array.shape[1])
    return tensors, normalisers, dims, int(train_classes.size)


def _mapped_rows(name: str, source: MappedFeatures, data: AlignmentData, key: str, idx: np.ndarray,
                 normaliser: Normaliser, device: torch.device) -> tuple[MappedRows, np.ndarray | None]:
    """Fit ``normaliser`` on the present training rows in one streaming pass (checking they are
    finite) and return the split's rows left on disk, with the presence mask if any."""
    present = np.asarray(data.sample_masks[key], dtype=bool)[idx] if key in data.sample_masks else None
    fitted = idx if present is None else idx[present]

    def checked():
        for start, block in zip(range(0, fitted.size, source.chunk_rows), source.chunks(fitted)):
            if not np.isfinite(block).all():
                row = int(fitted[start + int(np.argwhere(~np.isfinite(block))[0, 0])])
                raise DataError(f"{data.name}: modality {name!r} ({key!r}, {source!r}) holds NaN or Inf at row {row}")
            yield torch.from_numpy(block)

    normaliser.fit_chunks(checked())
    return MappedRows(source, idx, normaliser, device, present), present
